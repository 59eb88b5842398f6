"""FastAPI front door: intents in, RunViews out, every shape gated by ``contracts/``.

Served as a factory (``uvicorn --factory api.main:create_app``): nothing connects at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import errors, openapi, pools
from api.deps import AppState
from api.metrics import Metrics, RequestMetrics
from api.routes import artifacts, crashdemo, health, intents, metrics, runs
from api.run_events import RunEvents
from pipelines import logs, telemetry
from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.settings import Settings, load
from pipelines.store import db, repo


def _sandbox_status() -> dict[str, Any]:
    # detect() remembers a working sandbox after one real probe run and asks again after a failed
    # one (it may have been a starved probe), so /healthz recovers without an API restart.
    from pipelines.sandbox.resource import SandboxResource

    return SandboxResource().status()


def build_state(settings: Settings) -> AppState:
    return AppState(
        settings=settings,
        app_pool=pools.pool(db.app_url(settings), "app"),
        dagster_pool=pools.pool(db.dagster_url(settings), "dagster"),
        run_events=RunEvents(db.dagster_url(settings)),
        dagster=DagsterClient(settings.dagster_ui_url),
        new_id=repo.new_id,
        sandbox_status=_sandbox_status,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    st: AppState = app.state.harness
    st.app_pool.open(wait=False)
    st.dagster_pool.open(wait=False)
    st.run_events.start()
    try:
        yield
    finally:
        st.run_events.stop()
        st.app_pool.close()
        st.dagster_pool.close()


def create_app(state: AppState | None = None) -> FastAPI:
    app = FastAPI(title="intent-harness", version="0.1.0", lifespan=lifespan,
                  description="Durable intent → run harness: intents in, Dagster runs, RunViews out.")
    if state is None:  # the served process (uvicorn's factory), not a test building an app in its own
        logs.setup("api", load().log_format)
    app.state.harness = harness = state or build_state(load())
    errors.install(app)
    for module in (health, intents, runs, artifacts, crashdemo, metrics):
        app.include_router(module.router)
    app.state.metrics = Metrics(harness)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    openapi.install(app, bearer=harness.settings.api_token is not None)
    if telemetry.setup("api"):  # tracing configured (OTEL_*): server spans, a caller's traceparent joined
        telemetry.instrument_app(app)
    return app

