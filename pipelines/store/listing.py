"""Finding runs and intents: filtered, in one stable order (newest first, then id, descending),
one keyset page at a time. A page after ``after`` holds the rows strictly below that position,
so rows written meanwhile neither shift nor repeat a page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's (created_at, id)."""

    created_at: datetime
    ident: str


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    intent_id: str | None = None
    trace_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    intent_id: str
    status: str
    trace_id: str | None
    attempts: int
    last_dagster_run_id: str | None
    created_at: datetime
    status_at: datetime


@dataclass(frozen=True)
class IntentRow:
    intent_id: str
    goal: str
    created_at: datetime
    body: dict[str, Any]


def _page(conditions: list[sql.Composable], params: list[Any], *, id_column: str, after: Position | None,
          created_after: datetime | None, created_before: datetime | None) -> tuple[sql.Composable, list[Any]]:
    """The WHERE … ORDER BY … of a page; every filter is an index prefix (sql/0005)."""
    ident = sql.Identifier(id_column)
    if created_after is not None:
        conditions.append(sql.SQL("created_at > %s"))
        params.append(created_after)
    if created_before is not None:
        conditions.append(sql.SQL("created_at < %s"))
        params.append(created_before)
    if after is not None:
        conditions.append(sql.SQL("(created_at, {}) < (%s, %s)").format(ident))
        params += [after.created_at, after.ident]
    where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    return sql.SQL("WHERE {} ORDER BY created_at DESC, {} DESC LIMIT %s").format(where, ident), params


def runs(conn: psycopg.Connection, where: RunFilter, *, after: Position | None, limit: int) -> list[RunRow]:
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (("status", where.status), ("intent_id", where.intent_id), ("trace_id", where.trace_id)):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    tail, params = _page(conditions, params, id_column="run_id", after=after, created_after=where.created_after,
                         created_before=where.created_before)
    query = sql.SQL("SELECT run_id, intent_id, status, trace_id, attempts, last_dagster_run_id, created_at, "
                    "status_at FROM app.runs {}").format(tail)
    return [RunRow(*r) for r in conn.execute(query, [*params, limit]).fetchall()]


_INTENT = "SELECT intent_id, goal, created_at, inputs, constraints, connectors FROM app.intents"


def _intent(row: tuple[Any, ...]) -> IntentRow:
    return IntentRow(row[0], row[1], row[2], {"goal": row[1], "inputs": row[3], "constraints": row[4],
                                              "connectors": row[5]})


def intents(conn: psycopg.Connection, *, created_after: datetime | None, created_before: datetime | None,
            after: Position | None, limit: int) -> list[IntentRow]:
    tail, params = _page([], [], id_column="intent_id", after=after, created_after=created_after,
                         created_before=created_before)
    query = sql.SQL(_INTENT + " {}").format(tail)
    return [_intent(r) for r in conn.execute(query, [*params, limit]).fetchall()]


def intent(conn: psycopg.Connection, intent_id: str) -> IntentRow | None:
    row = conn.execute(_INTENT + " WHERE intent_id = %s", (intent_id,)).fetchone()
    return _intent(row) if row else None
