"""SQL for intents, runs, steps and artifacts (mapping only; callers own the transactions)."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pipelines import clock
from pipelines.store.artifacts import media_type


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Run:
    run_id: str
    intent_id: str
    trace_id: str | None
    options: dict[str, Any]
    launched_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime
    # The intent's constraints as accepted (the run's bounds come from them: orchestration/bounds).
    constraints: dict[str, Any] = field(default_factory=dict)
    # The W3C traceparent of the request that accepted the run (tracing on; pipelines/telemetry.py).
    traceparent: str | None = None


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


def _insert_once(conn: psycopg.Connection, *, table: str, id_column: str, insert: str, params: tuple[Any, ...],
                 idempotency_key: str | None, digest: str) -> tuple[str, bool]:
    """Run ``insert`` (ON CONFLICT (idempotency_key) DO NOTHING RETURNING <id>); when the key was used
    before, return that row's id if it was for the same request, else raise IdempotencyConflict.

    Returns (id, created).
    """
    row = conn.execute(insert, params).fetchone()
    if row:
        return row[0], True
    query = sql.SQL("SELECT {}, request_sha256 FROM {} WHERE idempotency_key = %s").format(
        sql.Identifier(id_column), sql.Identifier("app", table))
    existing = conn.execute(query, (idempotency_key,)).fetchone()
    assert existing is not None
    if existing[1] != digest:
        raise IdempotencyConflict(idempotency_key)
    return existing[0], False


def create_intent(conn: psycopg.Connection, *, intent_id: str, body: dict[str, Any],
                  idempotency_key: str | None) -> tuple[str, bool]:
    """Insert the intent, or return the one an earlier identical request with this key created."""
    digest = sha256(canonical_json(body))
    return _insert_once(
        conn, table="intents", id_column="intent_id", idempotency_key=idempotency_key, digest=digest,
        insert="""
        INSERT INTO app.intents (intent_id, goal, inputs, constraints, connectors, idempotency_key,
                                 request_sha256, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING intent_id
        """,
        params=(intent_id, body["goal"], Jsonb(body["inputs"]), Jsonb(body["constraints"]),
                Jsonb(body["connectors"]), idempotency_key, digest, clock.now()),
    )


def get_intent(conn: psycopg.Connection, intent_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT goal, inputs, constraints, connectors FROM app.intents WHERE intent_id = %s",
                       (intent_id,)).fetchone()
    if row is None:
        return None
    return {"goal": row[0], "inputs": row[1], "constraints": row[2], "connectors": row[3]}


def create_run(conn: psycopg.Connection, *, run_id: str, intent_id: str, trace_id: str | None,
               options: dict[str, Any], idempotency_key: str | None,
               traceparent: str | None = None) -> tuple[str, bool]:
    digest = sha256(canonical_json({"intentId": intent_id, "traceId": trace_id, "options": options}))
    now = clock.now()
    return _insert_once(
        conn, table="runs", id_column="run_id", idempotency_key=idempotency_key, digest=digest,
        insert="""
        INSERT INTO app.runs (run_id, intent_id, trace_id, options, idempotency_key, request_sha256, created_at,
                              status_at, traceparent)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING run_id
        """,
        params=(run_id, intent_id, trace_id, Jsonb(options), idempotency_key, digest, now, now, traceparent),
    )


def get_run(conn: psycopg.Connection, run_id: str, *, for_update: bool = False,
            skip_locked: bool = False) -> Run | None:
    """The run; ``for_update`` locks its row (``skip_locked``: None when another session holds it)."""
    lock = " FOR UPDATE OF r SKIP LOCKED" if skip_locked else " FOR UPDATE OF r" if for_update else ""
    row = conn.execute(
        "SELECT r.run_id, r.intent_id, r.trace_id, r.options, r.launched_at, r.canceled_at, r.created_at, "
        "i.constraints, r.traceparent FROM app.runs r JOIN app.intents i USING (intent_id) WHERE r.run_id = %s"
        + lock,
        (run_id,),
    ).fetchone()
    return Run(*row) if row else None


def waiting_ahead(conn: psycopg.Connection, run: Run, concurrency_key: str) -> int:
    """How many runs of ``concurrency_key`` were created before ``run`` and are still waiting for
    their launch (not launched, not canceled): the runs ahead of it in the key's line."""
    row = conn.execute(
        """
        SELECT count(*) FROM app.runs r JOIN app.intents i USING (intent_id)
        WHERE r.launched_at IS NULL AND r.canceled_at IS NULL AND (r.created_at, r.run_id) < (%s, %s)
          AND i.constraints -> 'concurrency' ->> 'key' = %s
        """,
        (run.created_at, run.run_id, concurrency_key),
    ).fetchone()
    return int(row[0]) if row else 0


def mark_launched(conn: psycopg.Connection, run_id: str) -> None:
    conn.execute("UPDATE app.runs SET launched_at = %s WHERE run_id = %s AND launched_at IS NULL",
                 (clock.now(), run_id))


def mark_canceled(conn: psycopg.Connection, run_id: str) -> None:
    conn.execute("UPDATE app.runs SET canceled_at = %s WHERE run_id = %s AND canceled_at IS NULL",
                 (clock.now(), run_id))


@dataclass(frozen=True)
class Observed:
    """A run's status as lifecycle.status derived it, and how fresh its inputs were: the newest
    update_timestamp of its Dagster run group (naive UTC; ``NEVER`` without one) and whether
    the row was canceled."""

    status: str
    attempts: int
    last_dagster_run_id: str | None
    version: datetime
    canceled: bool


NEVER = datetime(1, 1, 1)  # the status_version of a run with no Dagster run (sql/0005's default)


def record_status(conn: psycopg.Connection, run_id: str, seen: Observed) -> bool:
    """Store the observation unless the stored one is as fresh or fresher; True when written."""
    cur = conn.execute(
        """
        UPDATE app.runs SET status = %s, attempts = %s, last_dagster_run_id = %s, status_version = %s,
                            status_canceled = %s,
                            status_at = CASE WHEN status = %s THEN status_at ELSE %s END
        WHERE run_id = %s AND (status_version, status_canceled) < (%s, %s)
        """,
        (seen.status, seen.attempts, seen.last_dagster_run_id, seen.version, seen.canceled, seen.status,
         clock.now(), run_id, seen.version, seen.canceled),
    )
    return cur.rowcount == 1


def unsettled_run_ids(conn: psycopg.Connection, limit: int) -> list[str]:
    """Runs stored as not final yet (queued, running, retrying), least recently changed first."""
    rows = conn.execute("SELECT run_id FROM app.runs WHERE status IN ('queued', 'running', 'retrying') "
                        "ORDER BY status_at LIMIT %s", (limit,)).fetchall()
    return [r[0] for r in rows]


def unlaunched_run_ids(conn: psycopg.Connection, *, older_than_s: float, limit: int = 50) -> list[str]:
    """Runs committed more than ``older_than_s`` ago whose launch was never recorded, oldest first.

    Of a concurrency key's line only its first ``limit`` runs: no more of them can start at once,
    and a long line behind one key must not push the runs of other keys out of the page."""
    rows = conn.execute(
        """
        SELECT run_id FROM (
            SELECT r.run_id, r.created_at, c.key, c.size,
                   row_number() OVER (PARTITION BY c.key ORDER BY r.created_at, r.run_id) AS place
            FROM app.runs r JOIN app.intents i USING (intent_id),
                 LATERAL (SELECT CASE WHEN jsonb_typeof(i.constraints #> '{concurrency,limit}') = 'number'
                                      THEN i.constraints #>> '{concurrency,key}' END AS key,
                                 CASE WHEN jsonb_typeof(i.constraints #> '{concurrency,limit}') = 'number'
                                      THEN (i.constraints #>> '{concurrency,limit}')::numeric END AS size) c
            WHERE r.launched_at IS NULL AND r.canceled_at IS NULL AND r.created_at < %s - make_interval(secs => %s)
        ) waiting
        WHERE key IS NULL OR place <= greatest(size, 1)
        ORDER BY created_at LIMIT %s
        """,
        (clock.now(), older_than_s, limit),
    ).fetchall()
    return [r[0] for r in rows]

def artifacts(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT name, size, sha256 FROM app.artifacts WHERE run_id = %s ORDER BY name",
                        (run_id,)).fetchall()
    return [{"name": r[0], "size": int(r[1]), "sha256": r[2]} for r in rows]


def insert_artifact(conn: psycopg.Connection, *, run_id: str, step: str, name: str, content: bytes) -> None:
    conn.execute(
        "INSERT INTO app.artifacts (run_id, step, name, size, sha256, media_type, content, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, step, name, len(content), sha256(content), media_type(name, content), content,
         clock.now()),
    )
