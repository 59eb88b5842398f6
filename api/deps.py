"""Request dependencies: the app state (database pools, the Dagster client) and the write-route guard."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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


# FastAPI's scheme, so the OpenAPI document declares it on exactly the guarded routes (api/openapi.py
# drops it when no token is set); it only parses the header: the check and its 401 are ours.
_BEARER = HTTPBearer(scheme_name="bearer", auto_error=False)


def require_token(request: Request,
                  given: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]) -> None:
    """With API_TOKEN set, every write route needs ``Authorization: Bearer <token>``."""
    token = state(request).settings.api_token
    if token is None:
        return
    if given is None or not secrets.compare_digest(given.credentials.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required for this route",
                       headers={"WWW-Authenticate": "Bearer"})


StateDep = Annotated[AppState, Depends(state)]
WriteGuard = Depends(require_token)
