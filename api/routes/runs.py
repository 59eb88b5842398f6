from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import query, runview
from api.body import check_id, check_param
from api.deps import AppState, StateDep, WriteGuard
from api.errors import ApiError
from api.openapi import io
from api.respond import not_found, respond
from pipelines.orchestration import lifecycle
from pipelines.orchestration.dagster_client import DagsterRejected, DagsterUnavailable
from pipelines.store import listing, repo

router = APIRouter(tags=["runs"])


def _view(st: AppState, run_id: str) -> dict:
    with st.app_pool.connection() as app_conn, st.dagster_pool.connection() as dagster_conn:
        run = repo.get_run(app_conn, run_id)
        if run is None:
            raise not_found("run", run_id)
        return runview.build(app_conn, dagster_conn, run, dagster_ui_url=st.settings.dagster_ui_url,
                             sandbox_status=st.sandbox_status())


@router.get("/runs/{run_id}", openapi_extra=io(responses={200: "run-view", 400: "error", 404: "error"}))
async def get_run(run_id: str, st: StateDep,
                  wait: Annotated[float | None, Query(allow_inf_nan=False)] = None) -> JSONResponse:
    check_id(run_id, "runId")
    if wait is not None:
        check_param("wait", wait)  # its bounds: contracts/params.schema.json
    deadline = time.monotonic() + (wait or 0)
    since = st.run_events.mark()
    # Only the reads take a worker thread; the wait between them is a coroutine, so open
    # long-polls do not starve the sync routes of anyio's thread pool (40 threads).
    view = await run_in_threadpool(_view, st, run_id)
    first = view["status"]
    # Re-read when something may have changed the status (api/run_events.py).
    while view["status"] == first and first not in lifecycle.FINAL and (left := deadline - time.monotonic()) > 0:
        await st.run_events.wait(run_id, (r["runId"] for r in view["dagsterRuns"]), since, left)
        since = st.run_events.mark()
        view = await run_in_threadpool(_view, st, run_id)
    return respond("run-view", view)


@router.get("/runs", openapi_extra=io(responses={200: "run-list", 400: "error"}))
def list_runs(st: StateDep, status: str | None = None, intent_id: str | None = None, trace_id: str | None = None,
              created_after: str | None = None, created_before: str | None = None, limit: int | None = None,
              cursor: str | None = None) -> JSONResponse:
    """Runs newest first, filtered on their stored status (sql/0005: as last observed, at statusAt)."""
    for name, value in (("status", status), ("trace_id", trace_id), ("created_after", created_after),
                        ("created_before", created_before), ("limit", limit)):
        if value is not None:
            check_param(name, value)
    if intent_id is not None:
        check_id(intent_id, "intentId")
    size = limit or query.PAGE
    where = listing.RunFilter(status=status, intent_id=intent_id, trace_id=trace_id,
                              created_after=query.instant(created_after) if created_after else None,
                              created_before=query.instant(created_before) if created_before else None)
    after = query.decode(cursor, "run") if cursor is not None else None
    with st.app_pool.connection() as conn:
        rows = listing.runs(conn, where, after=after, limit=size + 1)
    return respond("run-list", {
        "runs": [{"runId": r.run_id, "intentId": r.intent_id, "status": r.status, "traceId": r.trace_id,
                  "attempts": r.attempts, "lastDagsterRunId": r.last_dagster_run_id,
                  "createdAt": query.iso(r.created_at), "statusAt": query.iso(r.status_at)} for r in rows[:size]],
        "nextCursor": query.next_cursor(rows, size, lambda r: (r.created_at, r.run_id)),
    })


def _act(st: AppState, run_id: str, action: Callable[..., object], unavailable: str) -> JSONResponse:
    """Apply a lifecycle action to the run; its refusals become envelopes."""
    check_id(run_id, "runId")
    with st.app_pool.connection() as conn, st.dagster_pool.connection() as dconn:
        try:
            action(conn, dconn, st.dagster, run_id)
        except LookupError:
            raise not_found("run", run_id) from None
        except lifecycle.Conflict as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except DagsterUnavailable as exc:
            raise ApiError(503, "unavailable", f"{unavailable}: {exc}") from exc
        except DagsterRejected as exc:
            raise ApiError(409, "conflict", f"Dagster refused: {exc}") from exc
    return respond("run-accepted", {"runId": run_id}, 202)


_ACT_ERRORS = {400: "error", 401: "error", 404: "error", 409: "error", 503: "error"}


@router.post("/runs/{run_id}/cancel", dependencies=[WriteGuard],
             openapi_extra=io(responses={202: "run-accepted", **_ACT_ERRORS}))
def cancel_run(run_id: str, st: StateDep) -> JSONResponse:
    """Record the cancel (no launch or retry follows), then terminate the live Dagster run."""
    try:
        return _act(st, run_id, lifecycle.cancel, "cancel recorded; Dagster could not be reached")
    finally:
        # A run with no Dagster run yet turns canceled with no Dagster event to wake its long-polls.
        st.run_events.touch(run_id)


@router.post("/runs/{run_id}/resume", dependencies=[WriteGuard],
             openapi_extra=io(responses={202: "run-accepted", **_ACT_ERRORS}))
def resume_run(run_id: str, st: StateDep) -> JSONResponse:
    """Re-execute from failure: only the steps that did not finish run again, under the same app run id."""
    return _act(st, run_id, lifecycle.resume, "Dagster could not be reached")
