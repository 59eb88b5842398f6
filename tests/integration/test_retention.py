"""Retention against the suite's real app database and Dagster storage: old finished runs go with
their Dagster runs and event logs; in-progress and retry-pending runs stay; a dry run deletes
nothing; a pass that crashed between the two databases is finished by the next; soak proofs are
pruned only by their own prune."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from pipelines import clock
from pipelines.definitions import defs
from pipelines.orchestration import lifecycle, retention
from pipelines.orchestration.dagster_runs import APP_RUN_TAG, PARENT_RUN_TAG
from pipelines.resources.app_db import AppDatabase
from pipelines.settings import REPO_ROOT
from pipelines.store import checkpoint, repo
from pipelines.store import retention as retention_sql
from tests.conftest import TestDatabases

JOB, SOAK_JOB = "intent_job", "crashdemo_soak"
OLD, RECENT = timedelta(days=40), timedelta(days=1)
S = DagsterRunStatus


def _before() -> datetime:
    return clock.now() - timedelta(days=30)


def _intent(conn: psycopg.Connection) -> str:
    body = {"goal": "g", "inputs": {}, "constraints": {}, "connectors": []}
    return repo.create_intent(conn, intent_id=repo.new_id("int"), body=body, idempotency_key=None)[0]


def _app_run(conn: psycopg.Connection, intent_id: str | None = None, ago: timedelta = OLD) -> str:
    run_id = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id or _intent(conn), trace_id=None,
                             options={}, idempotency_key=None)[0]
    conn.execute("UPDATE app.runs SET created_at = %s WHERE run_id = %s", (clock.now() - ago, run_id))
    return run_id


def _dagster_run(instance: DagsterInstance, runs_conn: psycopg.Connection, app_run_id: str | None,
                 status: DagsterRunStatus, tags: dict[str, str] | None = None, ago: timedelta = OLD, job: str = JOB) -> str:
    """A run of the app run's group (None: of no app run, as a soak run) with one event in its
    log, last changed ``ago``."""
    run_id = str(uuid.uuid4())
    app_tag = {APP_RUN_TAG: app_run_id} if app_run_id else {}
    instance.add_run(DagsterRun(job_name=job, run_id=run_id, status=status, tags={**app_tag, **(tags or {})}))
    instance.report_engine_event("written for the retention test", instance.get_run_by_id(run_id))
    runs_conn.execute("UPDATE runs SET update_timestamp = update_timestamp - %s, create_timestamp = create_timestamp - %s "
                      "WHERE run_id = %s", (ago, ago, run_id))
    return run_id


def _observed(app_conn: psycopg.Connection, runs_conn: psycopg.Connection, run_id: str, stored: str | None = None) -> None:
    """Store the run's status as the sensor would; ``stored`` overrides it (a stale observation)."""
    lifecycle.refresh(app_conn, runs_conn, run_id)
    if stored:
        app_conn.execute("UPDATE app.runs SET status = %s WHERE run_id = %s", (stored, run_id))


def _with_step(app_conn: psycopg.Connection, run_id: str, dagster_run_id: str) -> None:
    """A committed step with an artifact, and the run's worker row."""
    checkpoint.run_step(app_conn, run_id=run_id, step="persist", dagster_run_id=dagster_run_id,
                        work=lambda _: ({"ok": True}, lambda c: repo.insert_artifact(
                            c, run_id=run_id, step="persist", name="result.json", content=b"{}")))
    app_conn.execute("INSERT INTO app.run_workers (dagster_run_id, hostname, pid, pid_start_ticks) "
                     "VALUES (%s, 'h', 1, 1)", (dagster_run_id,))


def _count(conn: psycopg.Connection, query: str, *args: object) -> int:
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return int(row[0])


def _gone_from_dagster(runs_conn: psycopg.Connection, dagster_run_id: str) -> bool:
    return all(_count(runs_conn, f"SELECT count(*) FROM {table} WHERE run_id = %s", dagster_run_id) == 0
               for table in ("runs", "run_tags", "event_logs"))


@pytest.fixture
def product(app_conn: psycopg.Connection, runs_conn: psycopg.Connection, instance: DagsterInstance) -> dict[str, str]:
    """One app run of each kind that matters, all created 40 days ago unless said otherwise."""
    ids: dict[str, str] = {}
    shared = _intent(app_conn)
    # Succeeded on its retry: two Dagster runs, a step, an artifact and a worker row to go with it.
    ids["succeeded"] = _app_run(app_conn, shared)
    root = _dagster_run(instance, runs_conn, ids["succeeded"], S.FAILURE, {"dagster/will_retry": "true"})
    ids["succeeded.retry"] = _dagster_run(instance, runs_conn, ids["succeeded"], S.SUCCESS,
                                          {PARENT_RUN_TAG: root, "dagster/retry_number": "1"})
    ids["succeeded.root"] = root
    _with_step(app_conn, ids["succeeded"], ids["succeeded.retry"])
    ids["failed"] = _app_run(app_conn)
    ids["failed.root"] = _dagster_run(instance, runs_conn, ids["failed"], S.FAILURE, {"dagster/will_retry": "false"})
    ids["canceled"] = _app_run(app_conn)  # canceled before its launch: no Dagster run
    repo.mark_canceled(app_conn, ids["canceled"])
    # Stored as final by a stale observation; live, each could still change.
    ids["retrying"] = _app_run(app_conn)
    _dagster_run(instance, runs_conn, ids["retrying"], S.FAILURE)  # will_retry not decided yet
    ids["running"] = _app_run(app_conn, shared)  # the shared intent stays with it
    _dagster_run(instance, runs_conn, ids["running"], S.STARTED)
    ids["canceling"] = _app_run(app_conn)
    _dagster_run(instance, runs_conn, ids["canceling"], S.CANCELING)
    # Finished, but not long enough ago.
    ids["finished_lately"] = _app_run(app_conn)
    _dagster_run(instance, runs_conn, ids["finished_lately"], S.SUCCESS, ago=RECENT)
    ids["young"] = _app_run(app_conn, ago=RECENT)
    _dagster_run(instance, runs_conn, ids["young"], S.SUCCESS)
    for name in ("succeeded", "failed", "canceled", "finished_lately", "young"):
        _observed(app_conn, runs_conn, ids[name])
    for name, stale in (("retrying", "failed"), ("running", "succeeded"), ("canceling", "canceled")):
        _observed(app_conn, runs_conn, ids[name], stored=stale)
    ids["shared_intent"] = shared
    return ids


KEPT = ("retrying", "running", "canceling", "finished_lately", "young")


def test_dry_run_lists_old_finished_runs_and_deletes_nothing(product: dict[str, str], app_conn: psycopg.Connection,
                                                            runs_conn: psycopg.Connection) -> None:
    found = retention.plan(app_conn, runs_conn, JOB, _before())
    assert {d.app_run_id: d.status for d in found} == {
        product["succeeded"]: "succeeded", product["failed"]: "failed", product["canceled"]: "canceled"}
    (succeeded,) = [d for d in found if d.app_run_id == product["succeeded"]]
    assert set(succeeded.dagster_run_ids) == {product["succeeded.root"], product["succeeded.retry"]}
    assert _count(app_conn, "SELECT count(*) FROM app.runs") == 8
    assert _count(runs_conn, "SELECT count(*) FROM runs") == 8


def test_prune_deletes_old_finished_runs_with_their_dagster_runs(product: dict[str, str], app_conn: psycopg.Connection,
                                                                runs_conn: psycopg.Connection,
                                                                instance: DagsterInstance) -> None:
    deleted = retention.prune(app_conn, runs_conn, instance, JOB, _before())
    assert {d.app_run_id for d in deleted} == {product["succeeded"], product["failed"], product["canceled"]}
    for name in ("succeeded", "failed", "canceled"):
        assert repo.get_run(app_conn, product[name]) is None
    for name in ("succeeded.root", "succeeded.retry", "failed.root"):
        assert _gone_from_dagster(runs_conn, product[name])
    for table in ("app.run_steps", "app.artifacts", "app.run_workers"):
        assert _count(app_conn, f"SELECT count(*) FROM {table}") == 0, table
    # The shared intent stays with its running run; the others' intents went with their last run.
    assert _count(app_conn, "SELECT count(*) FROM app.intents") == len(KEPT)
    assert repo.get_intent(app_conn, product["shared_intent"]) is not None
    for name in KEPT:
        assert repo.get_run(app_conn, product[name]) is not None, name
    assert _count(runs_conn, "SELECT count(*) FROM runs") == len(KEPT)
    assert retention.prune(app_conn, runs_conn, instance, JOB, _before()) == []  # nothing left to do


def test_a_pass_that_crashed_between_the_databases_is_finished_by_the_next(
        app_conn: psycopg.Connection, runs_conn: psycopg.Connection, instance: DagsterInstance) -> None:
    app_run = _app_run(app_conn)
    dagster_run = _dagster_run(instance, runs_conn, app_run, S.SUCCESS)
    still_going = _dagster_run(instance, runs_conn, "run_" + "0" * 32, S.STARTED)  # row gone, run not over
    with app_conn.transaction():  # what a pass commits before it reaches Dagster's storage
        retention_sql.delete_run(app_conn, app_run, [dagster_run])

    found = retention.plan(app_conn, runs_conn, JOB, _before())
    assert [(d.app_run_id, d.status, d.dagster_run_ids) for d in found] == [(app_run, None, (dagster_run,))]
    assert [d.app_run_id for d in retention.prune(app_conn, runs_conn, instance, JOB, _before())] == [app_run]
    assert _gone_from_dagster(runs_conn, dagster_run)
    assert not _gone_from_dagster(runs_conn, still_going)


def _soak_rows(app_conn: psycopg.Connection, wf_id: str, ago: timedelta) -> None:
    at = clock.now() - ago
    drid = str(uuid.uuid4())  # a child's in-process run: never in Dagster's storage
    app_conn.execute("INSERT INTO app.workflow_runs (wf_id, created_at) VALUES (%s, %s)", (wf_id, at))
    for step in ("s1", "s2"):
        app_conn.execute("INSERT INTO app.marks (run_id, step, dagster_run_id, marked_at) VALUES (%s, %s, %s, %s)",
                         (wf_id, step, drid, at))
        app_conn.execute("INSERT INTO app.run_steps (run_id, step, status, output, dagster_run_id, started_at, "
                         "finished_at) VALUES (%s, %s, 'succeeded', '{}', %s, %s, %s)", (wf_id, step, drid, at, at))
    if wf_id.startswith("soak-"):
        app_conn.execute("INSERT INTO app.soak_results (wf_id, crash_at, held, marks, settle_ms, dagster_run_id, "
                         "created_at) VALUES (%s, 's2_after_commit', true, '{}', 1, %s, %s)", (wf_id, drid, at))
        app_conn.execute("INSERT INTO app.run_workers (dagster_run_id, hostname, pid, pid_start_ticks, registered_at) "
                         "VALUES (%s, 'h', 1, 1, %s)", (drid, at))


def _proof_rows(app_conn: psycopg.Connection, wf_id: str) -> int:
    return sum(_count(app_conn, f"SELECT count(*) FROM app.{table} WHERE {column} = %s", wf_id)
               for table, column in (("workflow_runs", "wf_id"), ("marks", "run_id"), ("run_steps", "run_id"),
                                     ("soak_results", "wf_id")))


def test_soak_rows_are_pruned_only_by_their_own_prune(app_conn: psycopg.Connection, runs_conn: psycopg.Connection,
                                                      instance: DagsterInstance) -> None:
    ended = _dagster_run(instance, runs_conn, None, S.SUCCESS, job=SOAK_JOB)
    going = _dagster_run(instance, runs_conn, None, S.STARTED, job=SOAK_JOB)
    old = retention_sql.soak_wf_prefix(ended) + "0-aaaaaa"
    of_a_soak_still_going = retention_sql.soak_wf_prefix(going) + "0-bbbbbb"
    recent = retention_sql.soak_wf_prefix(going) + "1-cccccc"
    hand_proof = "proof-by-hand"  # the runbook's crashdemo proof: neither product nor soak
    for wf_id, ago in ((old, OLD), (of_a_soak_still_going, OLD), (recent, RECENT), (hand_proof, OLD)):
        _soak_rows(app_conn, wf_id, ago)
    app_conn.execute("INSERT INTO app.run_workers (dagster_run_id, hostname, pid, pid_start_ticks, registered_at) "
                     "VALUES (%s, 'h', 1, 1, %s)", (going, clock.now() - OLD))
    rows = {wf_id: _proof_rows(app_conn, wf_id) for wf_id in (old, of_a_soak_still_going, recent, hand_proof)}
    workers = _count(app_conn, "SELECT count(*) FROM app.run_workers")

    assert retention.prune(app_conn, runs_conn, instance, JOB, _before()) == []
    found = retention.soak_plan(app_conn, runs_conn, SOAK_JOB, _before())
    assert (found.wf_ids, found.dagster_run_ids, len(found.worker_run_ids)) == ([old], [ended], 2)
    assert {wf_id: _proof_rows(app_conn, wf_id) for wf_id in rows} == rows  # neither deleted anything
    assert _count(app_conn, "SELECT count(*) FROM app.run_workers") == workers

    assert retention.prune_soak(app_conn, runs_conn, instance, SOAK_JOB, _before()) == found
    assert _proof_rows(app_conn, old) == 0
    for wf_id in (of_a_soak_still_going, recent, hand_proof):
        assert _proof_rows(app_conn, wf_id) == rows[wf_id], wf_id
    assert _gone_from_dagster(runs_conn, ended) and not _gone_from_dagster(runs_conn, going)
    # Left: the recent proof's child, the still-going soak's child and the still-going soak itself.
    assert _count(app_conn, "SELECT count(*) FROM app.run_workers") == workers - 2


def test_the_scheduled_job_prunes_runs_and_soak_proofs(app_conn: psycopg.Connection, runs_conn: psycopg.Connection,
                                                      instance: DagsterInstance, test_databases: TestDatabases,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_DATABASE_URL", test_databases.dagster_url)
    app_run = _app_run(app_conn)
    dagster_run = _dagster_run(instance, runs_conn, app_run, S.SUCCESS)
    _observed(app_conn, runs_conn, app_run)
    wf_id = retention_sql.soak_wf_prefix(str(uuid.uuid4())) + "0-dddddd"
    _soak_rows(app_conn, wf_id, OLD)
    job = defs.resolve_job_def("prune")
    resources = {"app_db": AppDatabase(url=test_databases.app_url)}

    def run(soak: bool) -> None:
        config = {"ops": {"prune_old": {"config": {"older_than": "30d", "soak": soak}}}}
        assert job.execute_in_process(run_config=config, instance=instance, resources=resources).success

    run(soak=False)
    assert repo.get_run(app_conn, app_run) is None and _gone_from_dagster(runs_conn, dagster_run)
    assert _proof_rows(app_conn, wf_id) == 6  # a workflow, two marks, two steps, a result
    run(soak=True)
    assert _proof_rows(app_conn, wf_id) == 0


def test_the_cli_prints_in_a_dry_run_and_deletes_with_apply(app_conn: psycopg.Connection, runs_conn: psycopg.Connection,
                                                           instance: DagsterInstance,
                                                           test_databases: TestDatabases) -> None:
    app_run = _app_run(app_conn)
    dagster_run = _dagster_run(instance, runs_conn, app_run, S.SUCCESS)
    _observed(app_conn, runs_conn, app_run)
    env = {**os.environ, "APP_DATABASE_URL": test_databases.app_url, "DAGSTER_DATABASE_URL": test_databases.dagster_url}

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "scripts.runs", "prune", "--older-than", "30d", *args],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout + out.stderr

    printed = cli()
    assert "would delete 1 finished run(s)" in printed and app_run in printed and dagster_run in printed
    assert "dry run: nothing deleted" in printed
    assert repo.get_run(app_conn, app_run) is not None and not _gone_from_dagster(runs_conn, dagster_run)
    assert "deleted 1 finished run(s)" in cli("--apply")
    assert repo.get_run(app_conn, app_run) is None and _gone_from_dagster(runs_conn, dagster_run)
