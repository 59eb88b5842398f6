"""SQL for retention: find old rows and delete them. Which rows may go, and in what order against
Dagster's storage, is pipelines.orchestration.retention's to decide; callers own the transactions.

Two kinds of rows, never mixed:

- a product run's: its ``app.runs`` row, its steps and artifacts, the worker rows of its Dagster
  runs, and its intent once no run of it is left;
- the scheduled soak's proof rows, under workflow ids starting with ``SOAK_PREFIX``:
  ``app.soak_results``, ``app.marks``, ``app.workflow_runs`` and their steps.

The runbook's other proof rows (crashdemo workflows started by hand, by ``POST /crashdemo`` or by
``mise run wf:crashdemo``) are neither and are never deleted here: ``GET /marks`` and the proof
scripts read them by workflow id.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from pipelines.store import checkpoint

SOAK_PREFIX = "soak-"


def soak_wf_prefix(dagster_run_id: str) -> str:
    """How every workflow id of one soak run begins (pipelines.jobs.soak names them so)."""
    return f"{SOAK_PREFIX}{dagster_run_id[:8]}-"


def settled_run_ids(conn: psycopg.Connection, *, statuses: tuple[str, ...], created_before: datetime) -> list[str]:
    """Runs created before ``created_before`` whose stored status (as last observed) is one of
    ``statuses``, oldest first: candidates only, since the stored status may lag Dagster."""
    rows = conn.execute("SELECT run_id FROM app.runs WHERE status = ANY(%s) AND created_at < %s "
                        "ORDER BY created_at, run_id", (list(statuses), created_before)).fetchall()
    return [r[0] for r in rows]


def missing_run_ids(conn: psycopg.Connection, run_ids: list[str]) -> list[str]:
    """Those of ``run_ids`` that have no ``app.runs`` row."""
    rows = conn.execute("SELECT id FROM unnest(%s::text[]) AS id "
                        "WHERE NOT EXISTS (SELECT 1 FROM app.runs WHERE run_id = id) ORDER BY id", (run_ids,)).fetchall()
    return [r[0] for r in rows]


def delete_run(conn: psycopg.Connection, run_id: str, dagster_run_ids: list[str]) -> None:
    """Delete the run's row, steps and artifacts, its Dagster runs' worker rows, and its intent
    when no other run of it is left. Each part is a no-op once gone, so a run whose row a crashed
    pass already deleted passes through here too."""
    checkpoint.forget(conn, [run_id])
    delete_workers(conn, dagster_run_ids)
    row = conn.execute("DELETE FROM app.runs WHERE run_id = %s RETURNING intent_id", (run_id,)).fetchone()
    if row is None:
        return
    # Lock the intent before looking for its other runs: a run being created for it holds a key
    # share lock on it, so this waits for that run to commit and then sees it.
    conn.execute("SELECT 1 FROM app.intents WHERE intent_id = %s FOR UPDATE", (row[0],))
    conn.execute("DELETE FROM app.intents i WHERE intent_id = %s "
                 "AND NOT EXISTS (SELECT 1 FROM app.runs r WHERE r.intent_id = i.intent_id)", (row[0],))


def delete_workers(conn: psycopg.Connection, dagster_run_ids: list[str]) -> None:
    conn.execute("DELETE FROM app.run_workers WHERE dagster_run_id = ANY(%s)", (dagster_run_ids,))


def workers_registered_before(conn: psycopg.Connection, before: datetime) -> list[str]:
    rows = conn.execute("SELECT dagster_run_id FROM app.run_workers WHERE registered_at < %s ORDER BY registered_at",
                        (before,)).fetchall()
    return [r[0] for r in rows]


def old_soak_workflows(conn: psycopg.Connection, *, before: datetime, keep_prefixes: list[str]) -> list[str]:
    """Soak workflow ids whose every row is older than ``before``, except those starting with one
    of ``keep_prefixes`` (the soak runs still going: their check reads the marks it just made)."""
    like = SOAK_PREFIX + "%"
    rows = conn.execute(
        """
        WITH soak (wf_id, at) AS (
            SELECT wf_id, created_at FROM app.soak_results WHERE wf_id LIKE %(like)s
            UNION ALL SELECT wf_id, created_at FROM app.workflow_runs WHERE wf_id LIKE %(like)s
            UNION ALL SELECT run_id, marked_at FROM app.marks WHERE run_id LIKE %(like)s
            UNION ALL SELECT run_id, started_at FROM app.run_steps WHERE run_id LIKE %(like)s)
        SELECT wf_id FROM soak GROUP BY wf_id
        HAVING max(at) < %(before)s AND NOT wf_id LIKE ANY(%(keep)s)
        ORDER BY wf_id
        """,
        {"like": like, "before": before, "keep": [p + "%" for p in keep_prefixes]},
    ).fetchall()
    return [r[0] for r in rows]


def delete_soak_workflows(conn: psycopg.Connection, wf_ids: list[str]) -> None:
    conn.execute("DELETE FROM app.soak_results WHERE wf_id = ANY(%s)", (wf_ids,))
    conn.execute("DELETE FROM app.marks WHERE run_id = ANY(%s)", (wf_ids,))
    conn.execute("DELETE FROM app.workflow_runs WHERE wf_id = ANY(%s)", (wf_ids,))
    checkpoint.forget(conn, wf_ids)
