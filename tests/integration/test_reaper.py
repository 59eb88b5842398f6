"""The reaper against real run storage: it fails runs whose worker is gone, leaves live ones, lists
retries Dagster could not launch or lost, and builds no DagsterInstance when there is nothing to do."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
)

from pipelines.orchestration import dagster_runs
from pipelines.orchestration.reaper import reap, relaunch_abandoned_retries
from pipelines.sensors.reaper_sensor import run_reaper
from pipelines.store import run_workers
from tests.conftest import TestDatabases


def _started_run(instance: DagsterInstance, runs_conn: psycopg.Connection, started_s_ago: float) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="hello_job", run_id=run_id, status=DagsterRunStatus.STARTED))
    runs_conn.execute("UPDATE runs SET start_time = %s WHERE run_id = %s", (time.time() - started_s_ago, run_id))
    return run_id


def _dead_worker(app_conn: psycopg.Connection, run_id: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = run_workers.start_ticks(proc.pid)
    proc.wait()
    app_conn.execute("INSERT INTO app.run_workers (dagster_run_id, hostname, pid, pid_start_ticks) "
                     "VALUES (%s, %s, %s, %s)", (run_id, socket.gethostname(), proc.pid, ticks or 1))


def _no_instance() -> DagsterInstance:
    raise AssertionError("an idle reaper must not build a DagsterInstance")


def test_idle_reaper_builds_no_instance(instance: DagsterInstance, runs_conn: psycopg.Connection,
                                        app_conn: psycopg.Connection) -> None:
    assert reap(runs_conn, app_conn, _no_instance) == []
    assert dagster_runs.abandoned_retries(runs_conn, ended_after=0) == []


def test_reaps_dead_and_unregistered_workers_only(instance: DagsterInstance, runs_conn: psycopg.Connection,
                                                  app_conn: psycopg.Connection) -> None:
    dead = _started_run(instance, runs_conn, 1)
    _dead_worker(app_conn, dead)
    live = _started_run(instance, runs_conn, 60)
    run_workers.register(app_conn, live)
    never_registered = _started_run(instance, runs_conn, 60)
    just_started = _started_run(instance, runs_conn, 1)

    assert sorted(reap(runs_conn, app_conn, lambda: instance, grace_s=10)) == sorted([dead, never_registered])
    statuses = {r: instance.get_run_by_id(r).status for r in (dead, live, never_registered, just_started)}
    assert statuses == {dead: DagsterRunStatus.FAILURE, live: DagsterRunStatus.STARTED,
                        never_registered: DagsterRunStatus.FAILURE, just_started: DagsterRunStatus.STARTED}
    assert "reaped: run worker pid" in _failure_message(instance, dead)


def _failure_message(instance: DagsterInstance, run_id: str) -> str:
    return next(e.message for e in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE))


def _failed_retry(instance: DagsterInstance, launch_failed: bool, tags: dict[str, str] | None = None,
                  will_retry: bool = False) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="hello_job", run_id=run_id, status=DagsterRunStatus.NOT_STARTED))
    instance.report_run_failed(instance.get_run_by_id(run_id), message="boom")
    instance.add_run_tags(run_id, {"dagster/will_retry": str(will_retry).lower(), **(tags or {})})
    if launch_failed:
        instance.report_engine_event("Failed to retry run", instance.get_run_by_id(run_id))
    return run_id


def test_abandoned_retries_are_listed_once(instance: DagsterInstance, runs_conn: psycopg.Connection) -> None:
    abandoned = _failed_retry(instance, launch_failed=True)
    _failed_retry(instance, launch_failed=False)  # ran out of retries on its own account
    _failed_retry(instance, launch_failed=True, tags={dagster_runs.RELAUNCHED_TAG: "x"})
    _failed_retry(instance, launch_failed=True, tags={"dagster/auto_retry_run_id": "y"})
    assert dagster_runs.abandoned_retries(runs_conn, ended_after=time.time() - 60) == [abandoned]
    assert dagster_runs.abandoned_retries(runs_conn, ended_after=time.time() + 60) == []


def _lost_retry(instance: DagsterInstance, runs_conn: psycopg.Connection, ended_s_ago: float,
                tags: dict[str, str] | None = None) -> str:
    run_id = _failed_retry(instance, launch_failed=False, tags=tags, will_retry=True)
    runs_conn.execute("UPDATE runs SET end_time = %s WHERE run_id = %s", (time.time() - ended_s_ago, run_id))
    return run_id


class _ScriptedClient:
    """The reaper's DagsterClient, answering a re-execution with a run id (the real one is covered
    by the stack tests)."""

    def __init__(self) -> None:
        self.reexecuted: list[str] = []

    def reexecute_from_failure(self, parent_run_id: str) -> str:
        self.reexecuted.append(parent_run_id)
        return f"retry-of-{parent_run_id}"


def test_lost_retries_are_relaunched_once_after_their_grace(instance: DagsterInstance,
                                                           runs_conn: psycopg.Connection) -> None:
    """A failure Dagster decided to retry, with no retry a grace period later (the retry daemon's
    cursor passed its event), is re-executed from failure once and tagged with its retry."""
    lost = _lost_retry(instance, runs_conn, 60)
    _lost_retry(instance, runs_conn, 1)  # the daemon may still come: within the grace
    _lost_retry(instance, runs_conn, 60, {"dagster/auto_retry_run_id": "y"})  # retried
    _lost_retry(instance, runs_conn, 60, {dagster_runs.RELAUNCHED_TAG: "x"})  # relaunched by us
    retried_by_hand = _lost_retry(instance, runs_conn, 60)
    instance.add_run(DagsterRun(job_name="hello_job", run_id=str(uuid.uuid4()), status=DagsterRunStatus.NOT_STARTED,
                                tags={dagster_runs.PARENT_RUN_TAG: retried_by_hand}))
    now = time.time()
    assert dagster_runs.lost_retries(runs_conn, ended_before=now - 30, ended_after=now - 3600) == [lost]

    client = _ScriptedClient()
    assert relaunch_abandoned_retries(runs_conn, lambda: instance, client) == [lost]  # type: ignore[arg-type]
    assert client.reexecuted == [lost]
    tags = instance.get_run_by_id(lost).tags
    assert tags["dagster/auto_retry_run_id"] == tags[dagster_runs.RELAUNCHED_TAG] == f"retry-of-{lost}"
    assert relaunch_abandoned_retries(runs_conn, lambda: instance, client) == []  # type: ignore[arg-type]


def test_sensor_tick_reaps(instance: DagsterInstance, runs_conn: psycopg.Connection, app_conn: psycopg.Connection,
                           test_databases: TestDatabases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", test_databases.app_url)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", test_databases.dagster_url)
    dead = _started_run(instance, runs_conn, 60)
    _dead_worker(app_conn, dead)
    result = run_reaper(build_sensor_context(instance=instance))
    assert f"reaped 1 run(s) ['{dead}']" in str(result.skip_message)
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    assert run_reaper(build_sensor_context(instance=instance)).skip_message == "no abandoned runs"


def test_sensors_take_no_resources() -> None:
    """With resources Dagster builds a DagsterInstance on every tick (pipelines/sensors/databases.py)."""
    from pipelines.definitions import defs

    for sensor in defs.sensors or []:
        assert not sensor.required_resource_keys, sensor.name
