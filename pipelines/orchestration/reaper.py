"""Keep crashed runs moving: fail runs whose worker is provably gone, and relaunch retries that
Dagster gave up on only because the code location was down.

1. Dagster's DefaultRunLauncher cannot check a worker's health: when the run worker and the code
   server die together the run stays STARTED until ``max_runtime``. A run is reaped when its
   registered worker (pid + start ticks, ``app.run_workers``) is gone on this host, or when it has
   been STARTED for ``unregistered_grace_s`` without ever registering one. A run on a Celery worker
   host (another machine, as far as we know) registered under that host's heartbeat lease
   (``app.worker_leases``): it is reaped once that lease is dead (expired: no heartbeat for
   ``HARNESS_LEASE_TTL_S``, or superseded by the worker's restart), after ``leases.revoke`` has
   waited out any step commit still holding it, so the lost worker can commit nothing more. On a
   host whose lease is alive, a run is reaped when the host's agent found its process gone
   (``run_workers.mark_gone``: a pool child killed, which Celery's task state may not tell).
2. When the retry daemon cannot launch a retry (the code server is restarting, say), it logs
   "Failed to retry run", tags the run ``dagster/will_retry=false`` and never tries again. Such a
   run failed for an infrastructure reason, not its own; it is re-executed from failure once the
   code location answers again (once per run, marked by a tag).
3. The retry daemon can also lose a retry without a word: it reads failures through an event-id
   cursor, and a FAILURE event committed out of id order (run monitoring failing a run at its
   max runtime while the interrupted worker writes its own events) falls behind the cursor and
   is never seen. Such a run stays FAILURE with ``dagster/will_retry=true`` and no retry, its app
   run ``retrying`` for good (seen in 2 of 3 full-suite runs of the max-runtime test). Once it
   has waited ``LOST_RETRY_GRACE_S`` (the daemon retries within seconds) it is re-executed from
   failure too. The re-execution joins the run group, so Dagster's ``max_retries`` still counts
   it; the run is tagged ``dagster/auto_retry_run_id`` with it, which is how the daemon, should it
   come to the run after all, knows the retry exists (``get_automatically_retried_run_if_exists``).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import psycopg
from dagster import DagsterInstance, DagsterRunStatus

from pipelines.orchestration import dagster_runs
from pipelines.orchestration.dagster_client import DagsterClient, DagsterRejected, DagsterUnavailable
from pipelines.orchestration.dagster_runs import AUTO_RETRY_RUN_ID_TAG, RELAUNCHED_TAG
from pipelines.store import leases, run_workers

log = logging.getLogger(__name__)

UNREGISTERED_GRACE_S = 10.0
RELAUNCH_WINDOW_S = 3600.0
LOST_RETRY_GRACE_S = 30.0


def _gone(conn: psycopg.Connection, run_id: str, started: float | None, grace_s: float) -> str | None:
    """Why the run's worker is gone, or None when it is (or may be) alive."""
    lease = run_workers.lease_of(conn, run_id)
    if lease is not None:
        if leases.revoke(conn, *lease):
            return f"worker {lease[0]}'s lease (epoch {lease[1]}) expired: the worker host is gone or cut off"
        if run_workers.found_gone(conn, run_id):
            return f"its process on worker host {lease[0]} is gone (seen by the host's agent)"
        return None
    worker = run_workers.lookup(conn, run_id)
    if worker is None:
        if started is not None and time.time() - started > grace_s:
            return f"no worker registered {grace_s:.0f}s after the run started"
        return None
    host, pid, ticks = worker
    if host != socket.gethostname():
        return None  # another host's process: not ours to judge
    if run_workers.is_alive(pid, ticks):
        return None
    return f"run worker pid {pid} on {host} is gone"


def reap(dagster_conn: psycopg.Connection, app_conn: psycopg.Connection, instance: Callable[[], DagsterInstance],
         grace_s: float = UNREGISTERED_GRACE_S) -> list[str]:
    """Fail each STARTED run whose worker is gone. Candidates are read from Dagster's run table
    directly; ``instance()`` is called only when there is one to fail (an idle sensor tick then
    builds no DagsterInstance, which costs ~10 new Postgres sessions)."""
    reaped = []
    for run_id, started in dagster_runs.started_runs(dagster_conn):
        reason = _gone(app_conn, run_id, started, grace_s)
        if reason is None:
            continue
        # Re-read after the liveness check: a worker that finished wrote its final status
        # before exiting, so only a run still STARTED now was abandoned.
        current = instance().get_run_by_id(run_id)
        if current is None or current.status != DagsterRunStatus.STARTED:
            continue
        instance().report_run_failed(current, message=f"reaped: {reason}")
        reaped.append(run_id)
    return reaped


def relaunch_abandoned_retries(dagster_conn: psycopg.Connection, instance: Callable[[], DagsterInstance],
                               client: DagsterClient) -> list[str]:
    """Re-execute from failure each recent run whose automatic retry could not be launched or was
    lost."""
    now = time.time()
    relaunched = []
    for run_id in (dagster_runs.abandoned_retries(dagster_conn, ended_after=now - RELAUNCH_WINDOW_S)
                   + dagster_runs.lost_retries(dagster_conn, ended_before=now - LOST_RETRY_GRACE_S,
                                               ended_after=now - RELAUNCH_WINDOW_S)):
        try:
            new_run_id = client.reexecute_from_failure(run_id)
        except (DagsterUnavailable, DagsterRejected) as exc:
            log.warning("could not re-execute run %s yet (next tick): %s %s", run_id, exc, getattr(exc, "body", ""))
            continue
        instance().add_run_tags(run_id, {RELAUNCHED_TAG: new_run_id, AUTO_RETRY_RUN_ID_TAG: new_run_id})
        relaunched.append(run_id)
    return relaunched
