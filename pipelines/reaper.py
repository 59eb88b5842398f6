"""Keep crashed runs moving: fail runs whose worker is provably gone, and relaunch retries that
Dagster gave up on only because the code location was down.

1. Dagster's DefaultRunLauncher cannot check a worker's health: when the run worker and the code
   server die together the run stays STARTED until ``max_runtime``. A run is reaped when its
   registered worker (pid + start ticks, ``app.run_workers``) is gone on this host, or when it has
   been STARTED for ``unregistered_grace_s`` without ever registering one.
2. When the retry daemon cannot launch a retry (the code server is restarting, say), it logs
   "Failed to retry run", tags the run ``dagster/will_retry=false`` and never tries again. Such a
   run failed for an infrastructure reason, not its own; it is re-executed from failure once the
   code location answers again (once per run, marked by a tag).
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import psycopg
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from pipelines import workers
from pipelines.dagster_client import DagsterClient, DagsterRejected, DagsterUnavailable
from pipelines.dagster_runs import RELAUNCHED_TAG

UNREGISTERED_GRACE_S = 10.0
RETRY_LAUNCH_FAILED = "Failed to retry run"
RELAUNCH_WINDOW_S = 3600.0


def _gone(conn: psycopg.Connection, run_id: str, started: float | None, grace_s: float) -> str | None:
    """Why the run's worker is gone, or None when it is (or may be) alive."""
    worker = workers.lookup(conn, run_id)
    if worker is None:
        if started is not None and time.time() - started > grace_s:
            return f"no worker registered {grace_s:.0f}s after the run started"
        return None
    host, pid, ticks = worker
    if host != socket.gethostname():
        return None  # another host's process: not ours to judge
    if workers.is_alive(pid, ticks):
        return None
    return f"run worker pid {pid} on {host} is gone"


def reap(instance: DagsterInstance, conn: psycopg.Connection, grace_s: float = UNREGISTERED_GRACE_S) -> list[str]:
    reaped = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        reason = _gone(conn, run.run_id, record.start_time, grace_s)
        if reason is None:
            continue
        # Re-read after the liveness check: a worker that finished wrote its final status
        # before exiting, so only a run still STARTED now was abandoned.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != DagsterRunStatus.STARTED:
            continue
        instance.report_run_failed(current, message=f"reaped: {reason}")
        reaped.append(run.run_id)
    return reaped


def _retry_launch_failed(instance: DagsterInstance, run_id: str) -> bool:
    events = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    return any(e.message == RETRY_LAUNCH_FAILED for e in events)


def relaunch_abandoned_retries(instance: DagsterInstance, client: DagsterClient) -> list[str]:
    """Re-execute from failure each recent run whose automatic retry could not be launched."""
    relaunched = []
    since = datetime.fromtimestamp(time.time() - RELAUNCH_WINDOW_S, tz=UTC)
    candidates = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"dagster/will_retry": "false"}, updated_after=since))
    for record in candidates:
        run = record.dagster_run
        if RELAUNCHED_TAG in run.tags or "dagster/auto_retry_run_id" in run.tags:
            continue
        if not _retry_launch_failed(instance, run.run_id):
            continue
        try:
            new_run_id = client.reexecute_from_failure(run.run_id)
        except (DagsterUnavailable, DagsterRejected):
            continue  # the code location or webserver is still down: next tick
        instance.add_run_tags(run.run_id, {RELAUNCHED_TAG: new_run_id})
        relaunched.append(run.run_id)
    return relaunched
