"""The runbook's legacy proof routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.body import check_id
from api.deps import StateDep, WriteGuard
from api.errors import ApiError
from api.openapi import io
from api.respond import respond
from pipelines.jobs.crashdemo import CRASHDEMO
from pipelines.orchestration import lifecycle

router = APIRouter(tags=["crashdemo"])
WfQuery = Annotated[str, Query()]  # its schema: contracts/params.schema.json


@router.post("/crashdemo", dependencies=[WriteGuard],
             openapi_extra=io(responses={202: "crashdemo-started", 400: "error", 401: "error", 409: "error",
                                         503: "error"}))
def start_crashdemo(wf: WfQuery, st: StateDep) -> JSONResponse:
    check_id(wf, "wf")
    # Insert first and launch inside the same transaction: a second request for the same wf waits
    # on the row's unique key until this one commits (then finds it: 409) or rolls back because
    # Dagster could not launch (then it launches). A check before the launch would let both launch.
    with st.app_pool.connection() as conn, conn.transaction():
        if conn.execute("INSERT INTO app.workflow_runs (wf_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1",
                        (wf,)).fetchone() is None:
            raise ApiError(409, "conflict", f"workflow {wf} already exists")
        with st.dagster_pool.connection() as dconn:
            dagster_run_id = lifecycle.create_root(dconn, st.dagster, CRASHDEMO, wf)
        if dagster_run_id is None:
            raise ApiError(503, "unavailable", "Dagster could not launch the run; try again")
    return respond("crashdemo-started", {"wf": wf, "dagsterRunId": dagster_run_id}, 202)


@router.get("/marks", openapi_extra=io(responses={200: "marks", 400: "error"}))
def marks(wf: WfQuery, st: StateDep) -> JSONResponse:
    check_id(wf, "wf")
    with st.app_pool.connection() as conn:
        rows: dict[str, int] = dict(conn.execute("SELECT step, count(*) FROM app.marks WHERE run_id = %s GROUP BY step",
                                 (wf,)).fetchall())
    return respond("marks", {"wf": wf, "marks": {"s1": int(rows.get("s1", 0)), "s2": int(rows.get("s2", 0))}})
