"""Read Dagster run storage (its Postgres database) directly: runtime truth is rows.

Only reads, and only the columns this project needs from the ``runs`` and ``run_tags`` tables of
dagster-postgres 0.29 (pinned); tests/integration checks these columns exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import psycopg

APP_RUN_TAG = "app/run_id"
PARENT_RUN_TAG = "dagster/parent_run_id"
# A run's tags as stored in its serialized body (the expression of the one-root index).
RUN_TAGS_SQL = "(run_body::jsonb -> 'tags')"
ONE_ROOT_INDEX = "harness_one_root_run_per_app_run"
RELAUNCHED_TAG = "harness/relaunched_as"
# Dagster's tag naming a failed run's automatic retry (its retry daemon reads it to not retry twice).
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
# A run in one of these statuses is over (CANCELING is not: its worker may still be running).
ENDED = ("SUCCESS", "FAILURE", "CANCELED")
# The retry daemon's engine event when it cannot launch a retry (matched in the serialized event).
RETRY_LAUNCH_FAILED_LIKE = '%"Failed to retry run"%'


@dataclass(frozen=True)
class DagsterRun:
    run_id: str
    job_name: str
    status: str
    parent_run_id: str | None
    root_run_id: str | None
    retry_number: int
    # Dagster tags a failed run true/false just after writing FAILURE; None = not decided yet.
    will_retry: bool | None
    # The retry daemon could not launch the retry (code location down) and gave up; the reaper
    # sensor re-executes such a run once the location is back (pipelines/reaper.py).
    retry_launch_failed: bool
    created_at: float
    # Dagster's update_timestamp (naive UTC): bumped by every status and tag change of the run.
    updated_at: datetime

    @property
    def retry_pending(self) -> bool:
        return self.status == "FAILURE" and (self.will_retry is not False or self.retry_launch_failed)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def settled(self) -> bool:
        """Nothing more will happen to this run's group on its account."""
        return self.status in ("SUCCESS", "CANCELED") or (self.status == "FAILURE" and not self.retry_pending)


def run_group(conn: psycopg.Connection, app_run_id: str) -> list[DagsterRun]:
    """Every Dagster run tagged with this app run id, oldest first."""
    rows = conn.execute(
        """
        SELECT r.run_id, r.pipeline_name, r.status,
               max(t.value) FILTER (WHERE t.key = 'dagster/parent_run_id'),
               max(t.value) FILTER (WHERE t.key = 'dagster/root_run_id'),
               max(t.value) FILTER (WHERE t.key = 'dagster/retry_number'),
               max(t.value) FILTER (WHERE t.key = 'dagster/will_retry'),
               r.status = 'FAILURE' AND EXISTS (
                   SELECT 1 FROM event_logs e
                   WHERE e.run_id = r.run_id AND e.dagster_event_type = 'ENGINE_EVENT'
                     AND e.event LIKE %s) AND NOT bool_or(t.key = %s),
               extract(epoch FROM r.create_timestamp), r.update_timestamp
        FROM runs r
        JOIN run_tags a ON a.run_id = r.run_id AND a.key = %s AND a.value = %s
        LEFT JOIN run_tags t ON t.run_id = r.run_id
        GROUP BY r.run_id, r.pipeline_name, r.status, r.create_timestamp, r.update_timestamp, r.id
        ORDER BY r.create_timestamp, r.id
        """,
        (RETRY_LAUNCH_FAILED_LIKE, RELAUNCHED_TAG, APP_RUN_TAG, app_run_id),
    ).fetchall()
    return [
        DagsterRun(run_id=r[0], job_name=r[1], status=r[2], parent_run_id=r[3], root_run_id=r[4],
                   retry_number=int(r[5] or 0),
                   will_retry=None if r[6] is None else r[6] == "true", retry_launch_failed=bool(r[7]), created_at=float(r[8]),
                   updated_at=r[9])
        for r in rows
    ]


def root_run(conn: psycopg.Connection, app_run_id: str) -> str | None:
    """The Dagster run id of the app run's root run (there is at most one: ONE_ROOT_INDEX)."""
    # The index's own expression and predicate, literally, so the planner uses it.
    row = conn.execute(
        f"SELECT run_id FROM runs WHERE {RUN_TAGS_SQL} ->> '{APP_RUN_TAG}' = %s AND NOT ({RUN_TAGS_SQL} ? '{PARENT_RUN_TAG}')",
        (app_run_id,),
    ).fetchone()
    return row[0] if row else None


def status(conn: psycopg.Connection, dagster_run_id: str) -> str | None:
    row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (dagster_run_id,)).fetchone()
    return row[0] if row else None


def started_runs(conn: psycopg.Connection) -> list[tuple[str, float | None]]:
    """(run id, start time as epoch seconds) of every STARTED run."""
    rows = conn.execute("SELECT run_id, start_time FROM runs WHERE status = 'STARTED' ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


def abandoned_retries(conn: psycopg.Connection, *, ended_after: float) -> list[str]:
    """Failed runs, ended after ``ended_after`` (epoch seconds), whose retry the daemon tried and
    could not launch (``dagster/will_retry=false`` plus its "Failed to retry run" event), neither
    relaunched by the reaper nor retried since."""
    rows = conn.execute(
        """
        SELECT r.run_id FROM runs r
        WHERE r.status = 'FAILURE' AND (r.end_time IS NULL OR r.end_time > %s)
          AND EXISTS (SELECT 1 FROM run_tags t
                      WHERE t.run_id = r.run_id AND t.key = 'dagster/will_retry' AND t.value = 'false')
          AND NOT EXISTS (SELECT 1 FROM run_tags t
                          WHERE t.run_id = r.run_id AND t.key IN (%s, %s))
          AND EXISTS (SELECT 1 FROM event_logs e
                      WHERE e.run_id = r.run_id AND e.dagster_event_type = 'ENGINE_EVENT' AND e.event LIKE %s)
        ORDER BY r.id
        """,
        (ended_after, RELAUNCHED_TAG, AUTO_RETRY_RUN_ID_TAG, RETRY_LAUNCH_FAILED_LIKE),
    ).fetchall()
    return [r[0] for r in rows]


def lost_retries(conn: psycopg.Connection, *, ended_before: float, ended_after: float) -> list[str]:
    """Failed runs, ended between ``ended_after`` and ``ended_before`` (epoch seconds), that Dagster
    decided to retry (``dagster/will_retry=true``) but whose retry never came: no
    ``dagster/auto_retry_run_id``, no run re-executing it, not relaunched by the reaper."""
    rows = conn.execute(
        """
        SELECT r.run_id FROM runs r
        WHERE r.status = 'FAILURE' AND r.end_time < %s AND r.end_time > %s
          AND EXISTS (SELECT 1 FROM run_tags t
                      WHERE t.run_id = r.run_id AND t.key = 'dagster/will_retry' AND t.value = 'true')
          AND NOT EXISTS (SELECT 1 FROM run_tags t
                          WHERE t.run_id = r.run_id AND t.key IN (%s, %s))
          AND NOT EXISTS (SELECT 1 FROM run_tags t WHERE t.key = %s AND t.value = r.run_id)
        ORDER BY r.id
        """,
        (ended_before, ended_after, RELAUNCHED_TAG, AUTO_RETRY_RUN_ID_TAG, PARENT_RUN_TAG),
    ).fetchall()
    return [r[0] for r in rows]


def app_runs_changed(conn: psycopg.Connection, since: datetime, limit: int) -> list[tuple[str, datetime]]:
    """(app run id, newest update_timestamp) of the app runs whose Dagster runs changed after
    ``since`` (naive UTC), oldest change first."""
    rows = conn.execute(
        """
        SELECT t.value, max(r.update_timestamp) AS changed FROM runs r
        JOIN run_tags t ON t.run_id = r.run_id AND t.key = %s
        WHERE r.update_timestamp > %s
        GROUP BY t.value ORDER BY changed LIMIT %s
        """,
        (APP_RUN_TAG, since, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def app_runs_unchanged_since(conn: psycopg.Connection, job_name: str, since: datetime) -> list[str]:
    """The app run ids of ``job_name``'s runs whose whole group last changed before ``since``
    (naive UTC), whether or not their app row still exists."""
    rows = conn.execute(
        """
        SELECT t.value FROM runs r
        JOIN run_tags t ON t.run_id = r.run_id AND t.key = %s
        WHERE r.pipeline_name = %s
        GROUP BY t.value HAVING max(r.update_timestamp) < %s ORDER BY t.value
        """,
        (APP_RUN_TAG, job_name, since),
    ).fetchall()
    return [r[0] for r in rows]


def job_runs(conn: psycopg.Connection, job_name: str) -> list[tuple[str, str, datetime]]:
    """(run id, status, update_timestamp as naive UTC) of every run of ``job_name``, oldest first."""
    rows = conn.execute("SELECT run_id, status, update_timestamp FROM runs WHERE pipeline_name = %s ORDER BY id",
                        (job_name,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def stored(conn: psycopg.Connection, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` that are in Dagster's run storage."""
    return {r[0] for r in conn.execute("SELECT run_id FROM runs WHERE run_id = ANY(%s)", (run_ids,)).fetchall()}


def active_app_runs(conn: psycopg.Connection, tag: str, value: str, *, besides: str) -> int:
    """How many app runs other than ``besides`` have a Dagster run tagged ``tag`` = ``value`` that
    holds a slot: not finished yet, or failed with its retry still to come (the retry daemon
    launches it without asking anyone, so the slot stays taken until it has). Only an explicit
    ``will_retry=true`` holds one: a failure whose tag was never written must not hold it forever."""
    row = conn.execute(
        """
        SELECT count(DISTINCT a.value) FROM run_tags k
        JOIN runs r ON r.run_id = k.run_id
        JOIN run_tags a ON a.run_id = r.run_id AND a.key = %s AND a.value <> %s
        WHERE k.key = %s AND k.value = %s
          AND (r.status IN ('NOT_STARTED', 'QUEUED', 'STARTING', 'STARTED', 'CANCELING')
               OR (r.status = 'FAILURE'
                   AND EXISTS (SELECT 1 FROM run_tags w WHERE w.run_id = r.run_id
                               AND w.key = 'dagster/will_retry' AND w.value = 'true')
                   AND NOT EXISTS (SELECT 1 FROM run_tags c WHERE c.key = %s AND c.value = r.run_id)))
        """,
        (APP_RUN_TAG, besides, tag, value, PARENT_RUN_TAG),
    ).fetchone()
    return int(row[0]) if row else 0


def failure_message(conn: psycopg.Connection, dagster_run_id: str) -> str | None:
    """The message of the run's last failure event (who failed it and why: run monitoring's
    "Exceeded maximum runtime of N seconds.", a dead worker, a start timeout, ...)."""
    row = conn.execute(
        "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'PIPELINE_FAILURE' "
        "ORDER BY id DESC LIMIT 1", (dagster_run_id,)).fetchone()
    if row is None:
        return None
    entry = json.loads(row[0])
    return str((entry.get("dagster_event") or {}).get("message") or entry.get("user_message") or "")


def reaped_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Dagster runs failed because their worker was gone, by who noticed: the reaper sensor
    (``reaped: ...``, orchestration/reaper.py) or the warm pool reaping its dead child
    (``run worker pid N ... before the run finished``, launcher/pool.py)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE event LIKE %s), count(*) FILTER (WHERE event LIKE %s) FROM event_logs "
        "WHERE dagster_event_type = 'PIPELINE_FAILURE'",
        ("%reaped: %", "%run worker pid % before the run finished%")).fetchone()
    return {"reaper": int(row[0]), "pool": int(row[1])} if row else {"reaper": 0, "pool": 0}
