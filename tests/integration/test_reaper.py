"""The reaper against real run storage: it fails runs whose worker is gone, leaves live ones, lists
retries Dagster could not launch, and builds no DagsterInstance when there is nothing to do."""

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
from pipelines.orchestration.reaper import reap
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


def _failed_retry(instance: DagsterInstance, launch_failed: bool, tags: dict[str, str] | None = None) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="hello_job", run_id=run_id, status=DagsterRunStatus.NOT_STARTED))
    instance.report_run_failed(instance.get_run_by_id(run_id), message="boom")
    instance.add_run_tags(run_id, {"dagster/will_retry": "false", **(tags or {})})
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
