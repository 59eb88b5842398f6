"""The reconciler's page of unlaunched runs with concurrency keys (pipelines/store/repo.py), on the
suite's database: a key's line shows only as many runs as its limit, and only its runs count as
waiting ahead of one another."""

from __future__ import annotations

import psycopg

from pipelines.store import repo


def _runs(conn: psycopg.Connection, constraints: dict, n: int) -> list[str]:
    intent_id = repo.new_id("int")
    repo.create_intent(conn, intent_id=intent_id, idempotency_key=None,
                       body={"goal": "g", "inputs": {}, "constraints": constraints, "connectors": []})
    return [repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=None, options={},
                            idempotency_key=None)[0] for _ in range(n)]


def test_a_long_line_behind_one_key_does_not_push_other_runs_out_of_the_page(app_conn: psycopg.Connection) -> None:
    line = _runs(app_conn, {"concurrency": {"key": "busy", "limit": 2}}, 60)
    other = _runs(app_conn, {"concurrency": {"key": "idle", "limit": 2}}, 1)
    plain = _runs(app_conn, {}, 1)
    page = repo.unlaunched_run_ids(app_conn, older_than_s=0, limit=50)
    assert page == [*line[:2], *other, *plain]


def test_waiting_ahead_counts_only_older_unlaunched_runs_of_the_same_key(app_conn: psycopg.Connection) -> None:
    first, second, third = _runs(app_conn, {"concurrency": {"key": "k", "limit": 1}}, 3)
    _runs(app_conn, {"concurrency": {"key": "other", "limit": 1}}, 2)
    repo.mark_canceled(app_conn, first)
    run = repo.get_run(app_conn, third)
    assert run is not None and run.constraints == {"concurrency": {"key": "k", "limit": 1}}
    assert repo.waiting_ahead(app_conn, run, "k") == 1  # the second; the first was canceled
    repo.mark_launched(app_conn, second)
    assert repo.waiting_ahead(app_conn, run, "k") == 0
