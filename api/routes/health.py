from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import StateDep
from api.openapi import io
from api.respond import respond
from pipelines.orchestration.dagster_client import grpc_serving

router = APIRouter(tags=["health"])


def _db(pool: Any) -> tuple[bool, str]:
    try:
        with pool.connection() as conn:  # waits at most the pool's timeout (api/pools.py)
            conn.execute("SELECT 1")
        return True, "reachable"
    except (psycopg.Error, TimeoutError) as exc:
        return False, f"unreachable: {type(exc).__name__}"


@router.get("/healthz", openapi_extra=io(responses={200: "health", 503: "health"}))
async def healthz(st: StateDep) -> JSONResponse:
    # The probes at once, not one after another: in an outage each waits out its own bound, and
    # the answer should take the longest of them, not their sum.
    (app_ok, app_detail), (dagster_ok, dagster_detail), code_ok, sandbox = await asyncio.gather(
        run_in_threadpool(_db, st.app_pool), run_in_threadpool(_db, st.dagster_pool),
        run_in_threadpool(grpc_serving, st.settings.dagster_grpc_port), run_in_threadpool(st.sandbox_status))
    checks: dict[str, dict[str, Any]] = {
        "appDb": {"ok": app_ok, "required": True, "detail": app_detail},
        "dagsterStorage": {"ok": dagster_ok, "required": True, "detail": dagster_detail},
        "codeLocation": {"ok": code_ok, "required": False,
                         "detail": "serving" if code_ok else "not serving: runs wait in the outbox"},
        "sandbox": {"ok": bool(sandbox.get("available")), "required": False,
                    "detail": f"{sandbox.get('backend')}: {sandbox.get('reason') or 'ok'}"},
    }
    required_ok = all(c["ok"] for c in checks.values() if c["required"])
    status = "ok" if all(c["ok"] for c in checks.values()) else ("degraded" if required_ok else "down")
    return respond("health", {"status": status, "checks": checks}, 200 if required_ok else 503)
