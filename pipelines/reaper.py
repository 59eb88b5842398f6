"""Fail runs whose worker is provably gone, so the retry daemon resumes them from failure.

Dagster's DefaultRunLauncher cannot check a worker's health: when the run worker and the code
server die together the run stays STARTED until ``max_runtime``. A run is reaped when its
registered worker (pid + start ticks, ``app.run_workers``) is gone on this host, or when it has
been STARTED for ``unregistered_grace_s`` without ever registering one.
"""

from __future__ import annotations

import socket
import time

import psycopg
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from pipelines import workers

UNREGISTERED_GRACE_S = 10.0


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
