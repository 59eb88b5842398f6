"""Step checkpoints in ``app.run_steps``: the exactly-once mechanism every op uses, and the only
code that writes that table.

A step's effects and the row that marks it succeeded commit in one transaction, keyed by the
app-level run id (shared by every Dagster run of a run group). A retry or re-execution finds the
succeeded row and returns its output instead of redoing the work. ``run_step`` is the whole
begin → reuse → work → fail | commit-with-effect sequence; ops state only their step, work and effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pipelines import clock, telemetry
from pipelines.store import leases

Effect = Callable[[psycopg.Connection], None]
MAX_ERROR_CHARS = 2000  # what a failed step's row keeps of its message (the RunView shows it whole)
# A step's work, given its attempt number: its output and the effect to commit with it (None: the
# output is the only effect).
Work = Callable[[int], tuple[dict[str, Any], Effect | None]]


class StepError(Exception):
    """The step's work failed for a reason worth recording: ``kind`` and ``message`` go into its row."""

    def __init__(self, kind: str, message: str, *, retryable: bool = True):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class StepResult:
    output: dict[str, Any]
    attempt: int
    reused: bool  # the checkpoint of an earlier execution: the work was not done again


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
            attempts = s.attempts + 1, status = 'running', error = NULL, error_kind = NULL,
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
    returned and this execution's effect is not applied. On a Celery worker host the worker's lease
    is checked (and held) in the same transaction: a worker whose lease expired commits nothing
    (``leases.LeaseLost``), since its run was reaped and re-executed elsewhere.
    """
    with telemetry.span(telemetry.COMMIT_SPAN, {"app.run_id": run_id, "harness.step": step}), conn.transaction():
        row = conn.execute(
            "SELECT status, output FROM app.run_steps WHERE run_id = %s AND step = %s FOR UPDATE",
            (run_id, step),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"step {run_id}/{step} was never begun")
        if row[0] == "succeeded":
            return row[1], False
        leases.fence(conn)
        if effect is not None:
            effect(conn)
        conn.execute(
            """
            UPDATE app.run_steps SET status = 'succeeded', output = %s, finished_at = %s, error = NULL, error_kind = NULL
            WHERE run_id = %s AND step = %s
            """,
            (Jsonb(output), clock.now(), run_id, step),
        )
    return output, True


def fail(conn: psycopg.Connection, *, run_id: str, step: str, kind: str, message: str) -> None:
    conn.execute(
        "UPDATE app.run_steps SET status = 'failed', error_kind = %s, error = %s WHERE run_id = %s AND step = %s"
        " AND status <> 'succeeded'",
        (kind, message[:MAX_ERROR_CHARS], run_id, step),
    )


def run_step(conn: psycopg.Connection, *, run_id: str, step: str, dagster_run_id: str, work: Work) -> StepResult:
    """Do ``step`` of ``run_id`` at most once: reuse its checkpoint when one committed, else run
    ``work`` and commit its effect with the checkpoint in one transaction. A StepError from the work
    is recorded on the step's row and raised again."""
    attempt = begin(conn, run_id=run_id, step=step, dagster_run_id=dagster_run_id)
    if attempt.output is not None:
        return StepResult(output=attempt.output, attempt=attempt.attempt, reused=True)
    try:
        output, effect = work(attempt.attempt)
    except StepError as exc:
        fail(conn, run_id=run_id, step=step, kind=exc.kind, message=exc.message)
        raise
    committed, applied = commit(conn, run_id=run_id, step=step, output=output, effect=effect)
    return StepResult(output=committed, attempt=attempt.attempt, reused=not applied)


def steps(conn: psycopg.Connection, run_id: str) -> dict[str, dict[str, Any]]:
    """Every step row of the run by step name: status, attempts, output, error_kind, error."""
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute("SELECT step, status, attempts, output, error_kind, error FROM app.run_steps WHERE run_id = %s",
                       (run_id,)).fetchall()
    return {r["step"]: r for r in rows}


def output(conn: psycopg.Connection, run_id: str, step: str) -> dict[str, Any] | None:
    """The committed output of a step, or None when it has not succeeded."""
    row = conn.execute("SELECT output FROM app.run_steps WHERE run_id = %s AND step = %s AND status = 'succeeded'",
                       (run_id, step)).fetchone()
    return dict(row[0]) if row else None


def step_status(conn: psycopg.Connection, run_id: str, step: str) -> str | None:
    row = conn.execute("SELECT status FROM app.run_steps WHERE run_id = %s AND step = %s", (run_id, step)).fetchone()
    return row[0] if row else None


def forget(conn: psycopg.Connection, run_ids: list[str]) -> None:
    """Delete every step of these runs with the artifacts committed with them (retention: only
    for runs that can never execute again)."""
    conn.execute("DELETE FROM app.artifacts WHERE run_id = ANY(%s)", (run_ids,))
    conn.execute("DELETE FROM app.run_steps WHERE run_id = ANY(%s)", (run_ids,))
