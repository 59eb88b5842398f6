"""The RunView: one app run projected from Postgres rows (app tables + Dagster run storage).

Keys come out in the contract's order, and the view is validated before it is sent.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import psycopg

import contracts
from pipelines.jobs.intent import STEPS
from pipelines.orchestration import dagster_runs, lifecycle
from pipelines.store import checkpoint, repo


def _steps(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in STEPS:
        row = rows.get(name)
        step: dict[str, Any] = {"name": name, "status": row["status"] if row else "pending",
                                "attempts": int(row["attempts"]) if row else 0}
        if row and row["status"] == "failed":
            # Rows failed before error kinds were recorded say only "error".
            step["error"] = {"kind": row["error_kind"] or "error", "message": row["error"] or ""}
        out.append(step)
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
    rows = checkpoint.steps(app_conn, run.run_id)
    view = {
        "runId": run.run_id,
        "intentId": run.intent_id,
        "status": lifecycle.observe(app_conn, run, group),
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
