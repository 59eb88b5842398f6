"""Finding runs and intents over real HTTP: filters, one stable order, keyset pages that neither
repeat nor skip a row while rows are added, bounded page sizes, cursor and parameter checks
(400 envelopes, no writes); and the stored status those filters use, kept by lifecycle.observe
(never replaced by a staler observation) and the sync pass over Dagster's run table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from dagster import instance_for_test

import contracts
from pipelines.definitions import defs
from pipelines.orchestration import lifecycle, status_sync
from pipelines.settings import sqlalchemy_psycopg2
from pipelines.store import repo
from tests.conftest import TestDatabases

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _intent(conn: psycopg.Connection, at: datetime) -> str:
    intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), idempotency_key=None,
                                      body={"goal": "g", "inputs": {}, "constraints": {}, "connectors": []})
    conn.execute("UPDATE app.intents SET created_at = %s WHERE intent_id = %s", (at, intent_id))
    return intent_id


def _run(conn: psycopg.Connection, intent_id: str, at: datetime, status: str = "queued", trace: str | None = None) -> str:
    run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=trace, options={},
                                idempotency_key=None)
    conn.execute("UPDATE app.runs SET created_at = %s, status = %s WHERE run_id = %s", (at, status, run_id))
    return run_id


@pytest.fixture
def seeded(app_db_url: str) -> dict[str, Any]:
    """Two intents; 7 runs a minute apart, two of them at the same instant (the id breaks the tie)."""
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        a, b = _intent(conn, T0), _intent(conn, T0 + timedelta(hours=1))
        statuses = ["succeeded", "failed", "succeeded", "queued", "succeeded", "running", "succeeded"]
        runs = [_run(conn, a if i % 2 else b, T0 + timedelta(minutes=min(i, 5)), s, trace=f"t{i % 3}")
                for i, s in enumerate(statuses)]
    newest_first = sorted(range(7), key=lambda i: (min(i, 5), runs[i]), reverse=True)
    return {"intents": (a, b), "runs": runs, "statuses": statuses, "order": [runs[i] for i in newest_first]}


def _pages(client: httpx.Client, path: str, params: dict[str, Any], key: str) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        resp = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = contracts.validate("run-list" if key == "runs" else "intent-list", resp.json())
        pages.append([r["runId" if key == "runs" else "intentId"] for r in body[key]])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages


def test_runs_newest_first_in_keyset_pages(client: httpx.Client, seeded: dict[str, Any]) -> None:
    pages = _pages(client, "/runs", {"limit": 3}, "runs")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == seeded["order"]
    assert _pages(client, "/runs", {}, "runs") == [seeded["order"]]  # default limit 50


def test_filters_select_and_compose(client: httpx.Client, seeded: dict[str, Any]) -> None:
    runs, statuses, (a, _) = seeded["runs"], seeded["statuses"], seeded["intents"]
    expect = [r for r in seeded["order"] if statuses[runs.index(r)] == "succeeded"]
    assert sum(_pages(client, "/runs", {"status": "succeeded", "limit": 1}, "runs"), []) == expect
    by_intent = [r for r in seeded["order"] if runs.index(r) % 2]
    assert sum(_pages(client, "/runs", {"intent_id": a}, "runs"), []) == by_intent
    by_trace = [r for r in seeded["order"] if runs.index(r) % 3 == 1]
    assert sum(_pages(client, "/runs", {"trace_id": "t1"}, "runs"), []) == by_trace
    window = {"created_after": "2026-12-01T00:01:00Z", "created_before": "2026-12-01T01:04:00+01:00"}
    assert sum(_pages(client, "/runs", window, "runs"), []) == [runs[3], runs[2]]
    both = {"status": "succeeded", "intent_id": a, **window}
    assert sum(_pages(client, "/runs", both, "runs"), []) == []


def test_a_page_does_not_move_when_rows_are_added(client: httpx.Client, seeded: dict[str, Any],
                                                  app_db_url: str) -> None:
    first = client.get("/runs", params={"limit": 2}).json()
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        _run(conn, seeded["intents"][0], T0 + timedelta(days=1))  # newer than everything
    rest = _pages(client, "/runs", {"limit": 2, "cursor": first["nextCursor"]}, "runs")
    assert [r["runId"] for r in first["runs"]] + sum(rest, []) == seeded["order"]


def test_intents_listed_and_shown(client: httpx.Client, seeded: dict[str, Any]) -> None:
    a, b = seeded["intents"]
    assert _pages(client, "/intents", {"limit": 1}, "intents") == [[b], [a]]
    assert _pages(client, "/intents", {"created_before": "2026-12-01T00:30:00Z"}, "intents") == [[a]]
    resp = client.get(f"/intents/{a}")
    assert resp.status_code == 200
    assert contracts.validate("intent-view", resp.json()) == {
        "intentId": a, "goal": "g", "inputs": {}, "constraints": {}, "connectors": [], "createdAt": "2026-12-01T00:00:00Z"}
    assert client.get("/intents/int_" + "0" * 32).json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("path", "params", "code"), [
    ("/runs", {"cursor": "eyJ0IjoxfQ"}, "invalid_cursor"),
    ("/runs", {"cursor": "1-0123"}, "invalid_cursor"),
    ("/intents", {"cursor": "not a cursor"}, "invalid_cursor"),
    ("/runs", {"limit": 0}, "schema_violation"),
    ("/runs", {"limit": 201}, "schema_violation"),
    ("/runs", {"limit": "many"}, "schema_violation"),
    ("/runs", {"status": "done"}, "schema_violation"),
    ("/runs", {"trace_id": "a b"}, "schema_violation"),
    ("/runs", {"created_after": "yesterday"}, "schema_violation"),
    ("/intents", {"created_before": "2026-13-01T00:00:00Z"}, "schema_violation"),
    ("/runs", {"intent_id": "int_x"}, "invalid_id"),
    ("/intents/int_x", {}, "invalid_id"),
])
def test_bad_parameters_are_400_envelopes(client: httpx.Client, app_db_url: str, path: str,
                                          params: dict[str, Any], code: str) -> None:
    resp = client.get(path, params=params)
    assert resp.status_code == 400
    assert contracts.validate("error", resp.json())["error"]["code"] == code


def test_edge_instants_the_contract_admits_are_answered(client: httpx.Client, seeded: dict[str, Any]) -> None:
    for instant in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-12-01t00:00:00.1234567z"):
        assert contracts.violations("params", {"created_after": instant}) == [], instant
        assert client.get("/runs", params={"created_after": instant}).status_code == 200, instant
    assert client.get("/runs", params={"cursor": "999999999999999999-" + "f" * 32}).json()["runs"] != []


def _stored(app_db_url: str, run_id: str) -> tuple[Any, ...]:
    with psycopg.connect(app_db_url) as conn:
        row = conn.execute("SELECT status, attempts, last_dagster_run_id FROM app.runs WHERE run_id = %s",
                           (run_id,)).fetchone()
    assert row is not None
    return tuple(row)


def test_a_staler_observation_never_replaces_a_fresher_one(app_db_url: str, seeded: dict[str, Any]) -> None:
    run_id = seeded["runs"][3]
    now = datetime(2026, 12, 1, 12)
    fresh = repo.Observed("succeeded", 2, "d2", now, False)
    stale = repo.Observed("running", 1, "d1", now - timedelta(seconds=1), False)
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        assert repo.record_status(conn, run_id, fresh)
        assert not repo.record_status(conn, run_id, stale)
        assert not repo.record_status(conn, run_id, fresh)  # the same observation: nothing to write
        assert repo.record_status(conn, run_id, repo.Observed("canceled", 2, "d2", now, True))
    assert _stored(app_db_url, run_id) == ("canceled", 2, "d2")


def test_the_sync_pass_stores_what_dagster_settled(app_db_url: str, test_databases: TestDatabases,
                                                   client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)  # hello_job's app_db
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        run_id = _run(conn, _intent(conn, T0), T0)
    storage = {"postgres": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}
    with instance_for_test(overrides={"storage": storage}) as instance:
        result = defs.resolve_job_def("hello_job").execute_in_process(instance=instance, tags={"app/run_id": run_id})
    assert result.success
    assert _stored(app_db_url, run_id) == ("queued", 0, None)
    with psycopg.connect(app_db_url, autocommit=True) as app, \
            psycopg.connect(test_databases.dagster_url, autocommit=True) as dagster:
        observed, cursor = status_sync.sync(app, dagster, status_sync.Cursor())
        assert observed >= 1 and cursor.since > repo.NEVER
        assert _stored(app_db_url, run_id) == ("succeeded", 1, result.run_id)
        status_sync.sync(app, dagster, cursor)  # the overlap re-reads it; the stored status stays
        assert lifecycle.refresh(app, dagster, run_id) == "succeeded"
        assert _stored(app_db_url, run_id) == ("succeeded", 1, result.run_id)
    listed = client.get("/runs", params={"status": "succeeded"}).json()["runs"]
    assert [(r["runId"], r["attempts"], r["lastDagsterRunId"]) for r in listed] == [(run_id, 1, result.run_id)]
