"""Request dependencies: the app state (database pools, the Dagster client) and the write-route guard."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from api.errors import ApiError
from api.run_events import RunEvents
from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.settings import Settings


@dataclass
class AppState:
    settings: Settings
    app_pool: ConnectionPool
    dagster_pool: ConnectionPool
    run_events: RunEvents
    dagster: DagsterClient
    new_id: Callable[[str], str]
    sandbox_status: Callable[[], dict[str, Any]]


def state(request: Request) -> AppState:
    harness: AppState = request.app.state.harness
    return harness


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
WriteGuard = Depends(require_token)
