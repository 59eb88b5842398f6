from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import query
from api.body import check_id, check_param, json_body
from api.deps import StateDep, WriteGuard
from api.errors import ApiError
from api.openapi import io
from api.respond import not_found, respond
from contracts import Violation
from pipelines import telemetry
from pipelines.jobs.intent import INTENT
from pipelines.orchestration import lifecycle
from pipelines.store import listing, repo

router = APIRouter(tags=["intents"])
_WRITE_ERRORS = {400: "error", 401: "error", 409: "error", 413: "error", 415: "error"}
# Declared so the document lists it (api/openapi.py gives it its contracts/params.schema.json schema).
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/intents", dependencies=[WriteGuard],
             openapi_extra=io("intent-create", responses={201: "intent-created", **_WRITE_ERRORS}))
async def create_intent(request: Request, st: StateDep, key: IdempotencyKey = None) -> JSONResponse:
    body = await json_body(request, "intent-create")
    if key is not None:
        check_param("Idempotency-Key", key)

    def write() -> str:
        with st.app_pool.connection() as conn, conn.transaction():
            try:
                intent_id, _ = repo.create_intent(conn, intent_id=st.new_id("int"), body=body, idempotency_key=key)
            except repo.IdempotencyConflict:
                raise ApiError(409, "idempotency_conflict",
                               "this Idempotency-Key was used with a different request body") from None
        return intent_id

    return respond("intent-created", {"intentId": await run_in_threadpool(write)}, 201)


def _check_oc_mode(mode: str, allowed: tuple[str, ...]) -> None:
    """Record writes fixtures and spends provider quota, live spends quota: the operator enables them
    (HARNESS_OC_MODES); refused before any row is written."""
    if mode not in allowed:
        raise ApiError(403, "forbidden", f"OC mode {mode} is not enabled on this server",
                       [Violation("/oc/mode", f"{mode} is not in HARNESS_OC_MODES ({', '.join(allowed)})")])


@router.post("/intents/{intent_id}/run", dependencies=[WriteGuard],
             openapi_extra=io("run-create", required=False,
                              responses={202: "run-accepted", 403: "error", 404: "error", **_WRITE_ERRORS}))
async def run_intent(intent_id: str, request: Request, st: StateDep, key: IdempotencyKey = None) -> JSONResponse:
    check_id(intent_id, "intentId")
    body = await json_body(request, "run-create", empty_is={})
    if key is not None:
        check_param("Idempotency-Key", key)
    oc = body.get("oc", {})
    options = {"oc": {"mode": oc.get("mode", "replay"), "seed": oc.get("seed", 0)}}
    _check_oc_mode(options["oc"]["mode"], st.settings.oc_modes)
    traceparent = telemetry.current_traceparent()  # this request's span (tracing on), kept on the row

    def write_then_launch() -> str:
        # Outbox: the run row commits first; a launch that fails here is retried by the
        # reconciler sensor, so an accepted run is never lost (nor launched twice: lifecycle).
        with st.app_pool.connection() as conn, conn.transaction():
            if repo.get_intent(conn, intent_id) is None:
                raise not_found("intent", intent_id)
            try:
                run_id, _ = repo.create_run(conn, run_id=st.new_id("run"), intent_id=intent_id,
                                            trace_id=body.get("traceId"), options=options, idempotency_key=key,
                                            traceparent=traceparent)
            except repo.IdempotencyConflict:
                raise ApiError(409, "idempotency_conflict",
                               "this Idempotency-Key was used with a different request") from None
        with st.app_pool.connection() as conn, st.dagster_pool.connection() as dconn:
            lifecycle.launch(conn, dconn, st.dagster, INTENT, run_id)
        return run_id

    run_id = await run_in_threadpool(write_then_launch)
    # The runbook's traceId stays what the caller sent; on the span it is an attribute.
    telemetry.annotate({"app.run_id": run_id, "app.intent_id": intent_id, "app.trace_id": body.get("traceId") or ""})
    return respond("run-accepted", {"runId": run_id}, 202)



@router.get("/intents", openapi_extra=io(responses={200: "intent-list", 400: "error"}))
def list_intents(st: StateDep, created_after: str | None = None, created_before: str | None = None,
                 limit: int | None = None, cursor: str | None = None) -> JSONResponse:
    for name, value in (("created_after", created_after), ("created_before", created_before), ("limit", limit)):
        if value is not None:
            check_param(name, value)
    size = limit or query.PAGE
    after = query.decode(cursor, "int") if cursor is not None else None
    with st.app_pool.connection() as conn:
        rows = listing.intents(conn, created_after=query.instant(created_after) if created_after else None,
                               created_before=query.instant(created_before) if created_before else None,
                               after=after, limit=size + 1)
    return respond("intent-list", {
        "intents": [{"intentId": r.intent_id, "goal": r.goal, "createdAt": query.iso(r.created_at)}
                    for r in rows[:size]],
        "nextCursor": query.next_cursor(rows, size, lambda r: (r.created_at, r.intent_id)),
    })


@router.get("/intents/{intent_id}", openapi_extra=io(responses={200: "intent-view", 400: "error", 404: "error"}))
def get_intent(intent_id: str, st: StateDep) -> JSONResponse:
    check_id(intent_id, "intentId")
    with st.app_pool.connection() as conn:
        found = listing.intent(conn, intent_id)
    if found is None:
        raise not_found("intent", intent_id)
    return respond("intent-view", {"intentId": found.intent_id, **found.body, "createdAt": query.iso(found.created_at)})
