"""Request dependencies: database connections, the Dagster client, the write-route guard."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from api.errors import ApiError
from pipelines.dagster_client import DagsterClient
from pipelines.settings import Settings


@dataclass
class AppState:
    settings: Settings
    app_pool: ConnectionPool
    dagster_pool: ConnectionPool
    dagster: DagsterClient
    new_id: Callable[[str], str]
    sandbox_status: Callable[[], dict[str, Any]]


def state(request: Request) -> AppState:
    harness: AppState = request.app.state.harness
    return harness


def app_conn(request: Request) -> Iterator[psycopg.Connection]:
    try:
        with state(request).app_pool.connection(timeout=5) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise ApiError(503, "unavailable", "the app database is unavailable") from exc


def dagster_conn(request: Request) -> Iterator[psycopg.Connection]:
    try:
        with state(request).dagster_pool.connection(timeout=5) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise ApiError(503, "unavailable", "the Dagster storage database is unavailable") from exc


def require_token(request: Request) -> None:
    """With API_TOKEN set, every write route needs ``Authorization: Bearer <token>``."""
    token = state(request).settings.api_token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, credentials = given.partition(" ")
    if not (scheme.lower() == "bearer" and secrets.compare_digest(credentials.strip().encode(), token.encode())):
        raise ApiError(401, "unauthorized", "a valid bearer token is required for this route")


StateDep = Annotated[AppState, Depends(state)]
AppConn = Annotated[psycopg.Connection, Depends(app_conn)]
DagsterConn = Annotated[psycopg.Connection, Depends(dagster_conn)]
WriteGuard = Depends(require_token)
