"""One app run's life, for the API routes and the sensors alike: launch it exactly once, reconcile
what was accepted but not launched, cancel, resume, and what its status means.

**Exactly-once launch.** Dagster's run storage holds at most one *root* run per ``app/run_id``
tag (a unique partial index, pipelines.orchestration.dagster_storage). Whoever launches — the API
request, a client's retry of it, the outbox reconciler — first looks for the root and otherwise
asks Dagster to create one; a second create fails at its insert, so at most one root run can
ever exist, whatever fails in between (Dagster answering 500 after creating the run, Postgres
going away before ``launched_at`` commits, the API killed after its row commits). Retries and
re-executions hang under that root. After any launch error the run table, not the answer, says
whether the launch happened.

``app.runs.launched_at`` is only a hint for the reconciler (which rows to look at); the truth is
Dagster's run table.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from pipelines import telemetry
from pipelines.orchestration import alerts, bounds, dagster_runs, routing
from pipelines.orchestration.dagster_client import DagsterClient, DagsterRejected, DagsterUnavailable
from pipelines.orchestration.dagster_runs import APP_RUN_TAG, DagsterRun
from pipelines.settings import load
from pipelines.store import repo

log = logging.getLogger(__name__)

TRACE_TAG = "app/trace_id"
# The API launches at once; the reconciler only touches runs older than this, so it does not
# launch beside an API request that is still launching (harmless now, but it would be wasted work).
LAUNCH_GRACE_S = 10.0

_WAITING = {"QUEUED", "NOT_STARTED", "STARTING", "MANAGED"}
FINAL = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class JobTarget:
    """A job the lifecycle launches: its name and its run config for an app-level id."""

    name: str
    run_config: Callable[[str], dict[str, Any]]


class Conflict(Exception):
    """The run is not in a state that allows the request (cancel a succeeded run, resume a live one)."""


def launch_tags(run: repo.Run, traceparent: str | None = None) -> dict[str, str]:
    """The root Dagster run's tags; ``traceparent`` (tracing on) puts the run in the launch's trace."""
    tags = {APP_RUN_TAG: run.run_id, **bounds.tags(bounds.of(run.constraints))}
    if load().run_launcher == "celery":  # the broker queue and priority of the run's class
        tags.update(routing.tags(run.constraints))
    if run.trace_id:
        tags[TRACE_TAG] = run.trace_id
    if traceparent:
        tags[telemetry.TRACEPARENT_TAG] = traceparent
    return tags


def reconciler_tags(run: repo.Run) -> dict[str, str]:
    """``launch_tags`` for a run the reconciler launches: its launch span joins the trace of the
    request that accepted the run (tracing on and the row kept that request's traceparent)."""
    with telemetry.launch_span(run.traceparent, {"app.run_id": run.run_id, "app.trace_id": run.trace_id or "",
                                                   "harness.launched_by": "reconciler"}
                               ) as traceparent:
        return launch_tags(run, traceparent)


def create_root(dagster_conn: psycopg.Connection, client: DagsterClient, target: JobTarget, app_id: str,
                tags: dict[str, str] | None = None) -> str | None:
    """Create and submit the root run for ``app_id`` unless it exists. Returns its Dagster run id,
    or None when Dagster could not be asked (the caller or the reconciler tries again later)."""
    root = dagster_runs.root_run(dagster_conn, app_id)
    if root is not None:
        return root
    try:
        return client.launch(target.name, target.run_config(app_id), {**(tags or {}), APP_RUN_TAG: app_id})
    except (DagsterUnavailable, DagsterRejected) as exc:
        # "Already exists" (another launcher won), a 500 after the run was created, or a real
        # refusal: only the run table can tell them apart.
        root = dagster_runs.root_run(dagster_conn, app_id)
        if root is None:
            log.warning("launch of %s deferred: %s", app_id, exc)
        return root


def launch(conn: psycopg.Connection, dagster_conn: psycopg.Connection, client: DagsterClient, target: JobTarget,
           run_id: str, *, skip_locked: bool = False) -> str | None:
    """Launch the app run's root Dagster run unless it exists, the run was canceled or its
    concurrency key has no free slot (then the reconciler launches it later: bounds).

    The app row is locked meanwhile, so the API and the reconciler do not both ask Dagster (with
    ``skip_locked`` the reconciler passes over a row the API holds). Returns the root's Dagster
    run id, or None when nothing was launched."""
    with conn.transaction():
        run = repo.get_run(conn, run_id, for_update=True, skip_locked=skip_locked)
        if run is None or run.canceled_at:
            return None
        if dagster_runs.root_run(dagster_conn, run_id) is None and not bounds.may_launch(conn, dagster_conn, run):
            return None
        with telemetry.launch_span(run.traceparent, {"app.run_id": run_id, "app.trace_id": run.trace_id or "",
                                                   "harness.launched_by": "api"}
                                   ) as traceparent:
            dagster_run_id = create_root(dagster_conn, client, target, run_id, launch_tags(run, traceparent))
        if dagster_run_id is not None:
            repo.mark_launched(conn, run_id)
        return dagster_run_id


def reconcile(conn: psycopg.Connection, dagster_conn: psycopg.Connection, *,
              older_than_s: float = LAUNCH_GRACE_S) -> list[repo.Run]:
    """The committed runs older than ``older_than_s`` that still need their root Dagster run (the
    API crashed between commit and launch, or Dagster was down); runs found launched meanwhile
    are recorded as such. The caller launches what is returned; a root created meanwhile by
    anyone else makes that launch fail at the run storage's one-root index.

    A run whose concurrency key has no free slot stays unlaunched (bounds), and so does every
    younger run of that key: runs are looked at oldest first, and each one returned takes a slot."""
    pending = []
    chosen: Counter[str] = Counter()
    for run_id in repo.unlaunched_run_ids(conn, older_than_s=older_than_s):
        with conn.transaction():
            run = repo.get_run(conn, run_id, for_update=True, skip_locked=True)  # the API may hold it
            if run is None or run.canceled_at:
                continue
            if dagster_runs.root_run(dagster_conn, run_id) is not None:
                repo.mark_launched(conn, run_id)
                continue
            key = bounds.of(run.constraints).concurrency_key
            if key is None or bounds.may_launch(conn, dagster_conn, run, chosen=chosen[key], wait=False):
                chosen[key or ""] += 1
                pending.append(run)
    return pending


def status(run: repo.Run, group: list[DagsterRun]) -> str:
    """The one definition of an app run's status, from its row and its Dagster run group."""
    if not group:
        return "canceled" if run.canceled_at else "queued"
    last = group[-1]
    if last.status == "SUCCESS":
        return "succeeded"
    if last.status in ("CANCELED", "CANCELING"):
        # `canceled` only when the app asked for it. Dagster also cancels on its own: run
        # monitoring terminates a run over its maxRunSeconds (bounds) and then reports it failed,
        # and the worker's own RUN_CANCELED can land after that failure (a race inside Dagster),
        # leaving the run CANCELED, which is never retried. That run failed.
        if run.canceled_at:
            return "canceled"
        return "running" if last.status == "CANCELING" else "failed"
    if last.status == "FAILURE":
        if last.retry_pending:
            return "retrying"
        return "canceled" if run.canceled_at else "failed"
    if last.status in _WAITING:
        return "retrying" if last.retry_number > 0 else "queued"
    return "running"


def observe(conn: psycopg.Connection, run: repo.Run, group: list[DagsterRun]) -> str:
    """``status`` of the run, also stored on its row for finding runs by status (sql/0005) unless
    a fresher observation is stored already, with the failure alert it calls for (sql/0006).
    Returns the status."""
    current = status(run, group)
    seen = repo.Observed(
        status=current, attempts=len(group), last_dagster_run_id=group[-1].run_id if group else None,
        version=max((r.updated_at for r in group), default=repo.NEVER), canceled=run.canceled_at is not None)
    with conn.transaction():  # an alert commits with the status that caused it, or neither does
        if repo.record_status(conn, run.run_id, seen):
            alerts.enqueue(conn, run, seen)
    return current


def refresh(conn: psycopg.Connection, dagster_conn: psycopg.Connection, run_id: str) -> str | None:
    """Observe the run now (after a change the app made itself); None for an unknown run."""
    run = repo.get_run(conn, run_id)
    if run is None:
        return None
    return observe(conn, run, dagster_runs.run_group(dagster_conn, run_id))


def cancel(conn: psycopg.Connection, dagster_conn: psycopg.Connection, client: DagsterClient, run_id: str) -> None:
    """Record the cancel (no launch or retry follows it), then terminate the live Dagster run.

    Raises LookupError for an unknown run, Conflict for a succeeded one, and DagsterUnavailable
    when the cancel is recorded but Dagster could not be told."""
    with conn.transaction():
        run = repo.get_run(conn, run_id, for_update=True)
        if run is None:
            raise LookupError(run_id)
        group = dagster_runs.run_group(dagster_conn, run_id)
        if group and group[-1].status == "SUCCESS":
            raise Conflict(f"run {run_id} already succeeded")
        repo.mark_canceled(conn, run_id)
    if group and group[-1].status not in ("SUCCESS", "FAILURE", "CANCELED"):
        try:
            client.terminate(group[-1].run_id)
        except DagsterRejected:
            pass  # finished meanwhile; the recorded cancel stops any retry
    refresh(conn, dagster_conn, run_id)


def resume(conn: psycopg.Connection, dagster_conn: psycopg.Connection, client: DagsterClient, run_id: str) -> str:
    """Re-execute a failed run from failure under the same app run id; returns the new Dagster run id.

    The app row is locked meanwhile, so two resumes of one run cannot both re-execute it. Raises
    LookupError, Conflict, DagsterUnavailable or DagsterRejected."""
    with conn.transaction():
        run = repo.get_run(conn, run_id, for_update=True)
        if run is None:
            raise LookupError(run_id)
        group = dagster_runs.run_group(dagster_conn, run_id)
        if run.canceled_at or not group or group[-1].status != "FAILURE" or group[-1].retry_pending:
            raise Conflict(f"run {run_id} is not a failed run that can be resumed")
        dagster_run_id = client.reexecute_from_failure(group[-1].run_id)
    refresh(conn, dagster_conn, run_id)
    return dagster_run_id
