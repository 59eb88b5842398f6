"""Keep each run's stored status (sql/0005) current without a reader asking for it.

Two sets of runs are observed again on every pass: those whose Dagster runs changed since the
last pass (with an overlap, so a change committed late is still seen), and those stored as not
final yet (queued, running, retrying), least recently changed first. The second set covers what
the first can miss; the first is what catches a run stored as final that Dagster re-executed
(an operator's *Re-execute* in the UI). Every write goes through ``lifecycle.observe``, which
never replaces a fresher observation, so this pass, the API and the CLI may write side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from pipelines.orchestration import dagster_runs, lifecycle
from pipelines.store import repo

BATCH = 200
# A Dagster run's update_timestamp is taken before its transaction commits.
OVERLAP = timedelta(seconds=10)


@dataclass(frozen=True)
class Cursor:
    """Where the last pass stopped in Dagster's changes; ``full``: it stopped at BATCH, so the
    next pass must start there exactly (an overlap could then return the same batch forever)."""

    since: datetime = repo.NEVER
    full: bool = False

    def encode(self) -> str:
        return f"{self.since.isoformat()}|{int(self.full)}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        since, full = text.split("|")
        return cls(datetime.fromisoformat(since), full == "1")


def sync(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, cursor: Cursor) -> tuple[int, Cursor]:
    """Observe the runs that may have changed; returns how many were observed and the next cursor."""
    since = cursor.since if cursor.full or cursor.since == repo.NEVER else cursor.since - OVERLAP
    changed = dagster_runs.app_runs_changed(dagster_conn, since, BATCH)
    run_ids = {run_id for run_id, _ in changed} | set(repo.unsettled_run_ids(app_conn, BATCH))
    for run_id in sorted(run_ids):
        lifecycle.refresh(app_conn, dagster_conn, run_id)
    newest = max((at for _, at in changed), default=cursor.since)
    return len(run_ids), Cursor(max(newest, cursor.since), full=len(changed) == BATCH)
