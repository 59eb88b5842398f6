"""SQL for the alert outbox, ``app.alerts`` (sql/0006): one row per (event, webhook URL).
Mapping only; callers own the transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

MAX_ERROR_CHARS = 1000  # what a row keeps of a failed attempt's reason


@dataclass(frozen=True)
class Due:
    event_id: str
    url: str
    body: dict[str, Any]
    attempts: int


def enqueue(conn: psycopg.Connection, *, event_id: str, run_id: str, urls: tuple[str, ...],
            body: dict[str, Any], now: datetime) -> None:
    """One row per URL, due now; an event already queued for a URL is left as it is."""
    conn.execute(
        """
        INSERT INTO app.alerts (event_id, url, run_id, body, created_at, next_attempt_at)
        SELECT %s, url, %s, %s, %s, %s FROM unnest(%s::text[]) AS url
        ON CONFLICT (event_id, url) DO NOTHING
        """,
        (event_id, run_id, Jsonb(body), now, now, list(urls)),
    )


def claim_due(conn: psycopg.Connection, now: datetime) -> Due | None:
    """The undelivered row due longest ago, locked until the caller's transaction ends; rows
    another deliverer holds are skipped, so two never post the same row at once."""
    row = conn.execute(
        """
        SELECT event_id, url, body, attempts FROM app.alerts
        WHERE delivered_at IS NULL AND next_attempt_at <= %s
        ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED
        """,
        (now,),
    ).fetchone()
    return Due(*row) if row else None


def mark_delivered(conn: psycopg.Connection, due: Due, now: datetime) -> None:
    conn.execute("UPDATE app.alerts SET attempts = attempts + 1, delivered_at = %s, last_error = NULL "
                 "WHERE event_id = %s AND url = %s", (now, due.event_id, due.url))


def mark_failed(conn: psycopg.Connection, due: Due, error: str, next_attempt_at: datetime) -> None:
    conn.execute("UPDATE app.alerts SET attempts = attempts + 1, next_attempt_at = %s, last_error = %s "
                 "WHERE event_id = %s AND url = %s",
                 (next_attempt_at, error[:MAX_ERROR_CHARS], due.event_id, due.url))
