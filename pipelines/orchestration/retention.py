"""Retention: delete what is old and over, from the app database and Dagster's storage together.

**Product runs** (``plan`` / ``prune``). An app run goes when lifecycle.status — the one
definition — calls it final, none of its Dagster runs is still going (CANCELING is), its group's
last run has no retry pending, and both its row and its group's last change are older than the
cutoff. Its Dagster runs go through ``DagsterInstance.delete_run`` (the run, its tags and its
event log).

Order, for a crash in between: the app rows go first, in one transaction per run that holds the
run's row lock (a launch, cancel or resume of it waits for that, then finds no run), and only then
its Dagster runs. A crash between the two leaves Dagster runs tagged with an app run id that has
no row; every pass looks for exactly those (ended, older than the cutoff) and deletes them, so a
re-run finishes the job. The reverse order would leave an app row with an empty group, which
lifecycle.status reads as ``queued``: no later pass could tell it from a run never launched.

**Soak proofs** (``soak_plan`` / ``prune_soak``), on their own age and schedule: the soak's
proof rows older than the cutoff (never those of a soak run still going, whose check reads the
marks its children just made), the soak job's own ended Dagster runs older than it, and worker
rows older than it whose Dagster run is not in storage (the soak's in-process children, whose
runs are never stored, and runs deleted before). The three selections are independent, each by
age, so whatever a crash leaves is selected again by the next pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from dagster import DagsterInstance

from pipelines.orchestration import dagster_runs, lifecycle
from pipelines.store import repo, retention


@dataclass(frozen=True)
class Doomed:
    """An app run that may be deleted now, with its Dagster runs."""

    app_run_id: str
    status: str | None  # None: its row is gone already (a pass crashed after deleting it)
    created_at: datetime | None
    dagster_run_ids: tuple[str, ...]


@dataclass(frozen=True)
class SoakPlan:
    wf_ids: list[str]
    dagster_run_ids: list[str]
    worker_run_ids: list[str]


def _naive_utc(at: datetime) -> datetime:
    """Dagster's update_timestamp is naive UTC."""
    return at.astimezone(UTC).replace(tzinfo=None)


def _candidates(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, job: str, before: datetime) -> list[str]:
    """Runs stored as final and created before the cutoff, then groups of ``job`` whose app row
    is gone; each is checked live before anything is deleted."""
    stored = retention.settled_run_ids(app_conn, statuses=lifecycle.FINAL, created_before=before)
    unchanged = dagster_runs.app_runs_unchanged_since(dagster_conn, job, _naive_utc(before))
    return stored + retention.missing_run_ids(app_conn, unchanged)


def _check(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, run_id: str, before: datetime, *,
           lock: bool) -> Doomed | None:
    """The run as it may be deleted now, or None while it is (or may still become) live or is
    younger than the cutoff. ``lock`` (inside a transaction) holds its row until commit."""
    run = repo.get_run(app_conn, run_id, for_update=lock)
    group = dagster_runs.run_group(dagster_conn, run_id)
    if not all(r.ended for r in group) or (group and not group[-1].settled):
        return None
    if max((r.updated_at for r in group), default=repo.NEVER) >= _naive_utc(before):
        return None
    ids = tuple(r.run_id for r in group)
    if run is None:
        return Doomed(run_id, None, None, ids) if group else None
    current = lifecycle.status(run, group)
    if current not in lifecycle.FINAL or run.created_at >= before:
        return None
    return Doomed(run_id, current, run.created_at, ids)


def plan(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, job: str, before: datetime) -> list[Doomed]:
    """What ``prune`` would delete now (the dry run); ``job``: the product job's name."""
    found = (_check(app_conn, dagster_conn, run_id, before, lock=False)
             for run_id in _candidates(app_conn, dagster_conn, job, before))
    return [d for d in found if d is not None]


def prune(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, instance: DagsterInstance, job: str,
          before: datetime) -> list[Doomed]:
    """Delete each run ``plan`` finds, re-checked under its row lock (a resume may have come
    meanwhile): app rows first, committed, then its Dagster runs. Returns what was deleted."""
    deleted = []
    for run_id in _candidates(app_conn, dagster_conn, job, before):
        with app_conn.transaction():
            doomed = _check(app_conn, dagster_conn, run_id, before, lock=True)
            if doomed is None:
                continue
            retention.delete_run(app_conn, run_id, list(doomed.dagster_run_ids))
        for dagster_run_id in doomed.dagster_run_ids:
            instance.delete_run(dagster_run_id)
        deleted.append(doomed)
    return deleted


def soak_plan(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, soak_job: str,
              before: datetime) -> SoakPlan:
    """What ``prune_soak`` would delete now; ``soak_job``: the soak job's name."""
    naive = _naive_utc(before)
    runs = dagster_runs.job_runs(dagster_conn, soak_job)
    going = [retention.soak_wf_prefix(run_id) for run_id, status, _ in runs if status not in dagster_runs.ENDED]
    old_runs = [run_id for run_id, status, at in runs if status in dagster_runs.ENDED and at < naive]
    workers = retention.workers_registered_before(app_conn, before)
    in_storage = dagster_runs.stored(dagster_conn, workers)
    return SoakPlan(wf_ids=retention.old_soak_workflows(app_conn, before=before, keep_prefixes=going),
                    dagster_run_ids=old_runs,
                    worker_run_ids=[w for w in workers if w not in in_storage or w in old_runs])


def prune_soak(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, instance: DagsterInstance,
               soak_job: str, before: datetime) -> SoakPlan:
    """Delete what ``soak_plan`` finds: the proof and worker rows in one transaction, then the
    soak's old Dagster runs. Returns what was deleted."""
    found = soak_plan(app_conn, dagster_conn, soak_job, before)
    with app_conn.transaction():
        retention.delete_soak_workflows(app_conn, found.wf_ids)
        retention.delete_workers(app_conn, found.worker_run_ids)
    for run_id in found.dagster_run_ids:
        instance.delete_run(run_id)
    return found
