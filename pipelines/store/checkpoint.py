"""Step checkpoints in ``app.run_steps``: the exactly-once mechanism every op uses.

A step's effects and the row that marks it succeeded commit in one transaction, keyed by the
app-level run id (shared by every Dagster run of a run group). A retry or re-execution finds the
succeeded row and returns its output instead of redoing the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pipelines import clock

Effect = Callable[[psycopg.Connection], None]


@dataclass(frozen=True)
class Attempt:
    attempt: int
    output: dict[str, Any] | None  # set when the step already succeeded in an earlier run

    @property
    def done(self) -> bool:
        return self.output is not None


def begin(conn: psycopg.Connection, *, run_id: str, step: str, dagster_run_id: str) -> Attempt:
    """Record an attempt (or find the step already done)."""
    row = conn.execute(
        """
        INSERT INTO app.run_steps AS s (run_id, step, status, attempts, dagster_run_id, started_at)
        VALUES (%(run_id)s, %(step)s, 'running', 1, %(drid)s, %(now)s)
        ON CONFLICT (run_id, step) DO UPDATE SET
            attempts = s.attempts + 1, status = 'running', error = NULL,
            dagster_run_id = EXCLUDED.dagster_run_id, started_at = EXCLUDED.started_at
        WHERE s.status <> 'succeeded'
        RETURNING attempts
        """,
        {"run_id": run_id, "step": step, "drid": dagster_run_id, "now": clock.now()},
    ).fetchone()
    if row is not None:
        return Attempt(attempt=row[0], output=None)
    done = conn.execute(
        "SELECT attempts, output FROM app.run_steps WHERE run_id = %s AND step = %s", (run_id, step)
    ).fetchone()
    assert done is not None
    return Attempt(attempt=done[0], output=done[1])


def commit(
    conn: psycopg.Connection, *, run_id: str, step: str, output: dict[str, Any], effect: Effect | None = None
) -> tuple[dict[str, Any], bool]:
    """Apply ``effect`` and mark the step succeeded in one transaction.

    Returns (output, applied). When another execution committed the step first, its output is
    returned and this execution's effect is not applied.
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT status, output FROM app.run_steps WHERE run_id = %s AND step = %s FOR UPDATE",
            (run_id, step),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"step {run_id}/{step} was never begun")
        if row[0] == "succeeded":
            return row[1], False
        if effect is not None:
            effect(conn)
        conn.execute(
            """
            UPDATE app.run_steps SET status = 'succeeded', output = %s, finished_at = %s, error = NULL
            WHERE run_id = %s AND step = %s
            """,
            (Jsonb(output), clock.now(), run_id, step),
        )
    return output, True


def fail(conn: psycopg.Connection, *, run_id: str, step: str, error: str) -> None:
    conn.execute(
        "UPDATE app.run_steps SET status = 'failed', error = %s WHERE run_id = %s AND step = %s"
        " AND status <> 'succeeded'",
        (error[:4000], run_id, step),
    )
