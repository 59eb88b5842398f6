"""The RunView: one app run projected from Postgres rows (app tables + Dagster run storage).

Keys come out in the contract's order, and the view is validated before it is sent.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import psycopg

import contracts
from pipelines.orchestration import dagster_runs
from pipelines.store import repo

_WAITING = {"QUEUED", "NOT_STARTED", "STARTING", "MANAGED"}


def status(run: repo.Run, group: list[dagster_runs.DagsterRun]) -> str:
    if not group:
        return "canceled" if run.canceled_at else "queued"
    last = group[-1]
    if last.status == "SUCCESS":
        return "succeeded"
    if last.status in ("CANCELED", "CANCELING"):
        return "canceled"
    if last.status == "FAILURE":
        if last.retry_pending:
            return "retrying"
        return "canceled" if run.canceled_at else "failed"
    if last.status in _WAITING:
        return "retrying" if last.retry_number > 0 else "queued"
    return "running"


def _steps(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in repo.INTENT_STEPS:
        row = rows.get(name)
        out.append({"name": name, "status": row["status"] if row else "pending",
                    "attempts": int(row["attempts"]) if row else 0})
    return out


def _oc(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    row = rows.get("oc")
    if not row or row["status"] != "succeeded":
        return None
    plan, meta = row["output"]["plan"], row["output"]["meta"]
    return {"summary": plan["summary"], "mode": meta["mode"], "seed": meta["seed"], "fixtureKey": meta["fixtureKey"],
            "provider": meta["provider"], "model": meta["model"], "commands": len(plan["commands"])}


def _sandbox(rows: dict[str, dict[str, Any]], detected: dict[str, Any]) -> dict[str, Any]:
    row = rows.get("sandbox")
    results = []
    if row and row["status"] == "succeeded":
        for item in row["output"]["results"]:
            res = item["result"]
            results.append({"name": item["name"], "exitCode": res["exitCode"], "timedOut": res["timedOut"],
                            "backend": res["isolation"]["backend"], "enforced": sorted(res["isolation"]["enforced"]),
                            "files": len(res["files"])})
    return {"backend": detected.get("backend"), "available": detected.get("available"), "results": results}


def build(app_conn: psycopg.Connection, dagster_conn: psycopg.Connection, run: repo.Run, *,
          dagster_ui_url: str, sandbox_status: dict[str, Any]) -> dict[str, Any]:
    group = dagster_runs.run_group(dagster_conn, run.run_id)
    rows = repo.steps(app_conn, run.run_id)
    view = {
        "runId": run.run_id,
        "intentId": run.intent_id,
        "status": status(run, group),
        "traceId": run.trace_id,
        "createdAt": run.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "steps": _steps(rows),
        "oc": _oc(rows),
        "sandbox": _sandbox(rows, sandbox_status),
        "artifacts": repo.artifacts(app_conn, run.run_id),
        "dagsterRuns": [
            {"runId": r.run_id, "status": r.status, "retryNumber": r.retry_number, "parentRunId": r.parent_run_id,
             "url": f"{dagster_ui_url}/runs/{r.run_id}"}
            for r in group
        ],
    }
    return contracts.validate("run-view", view)
