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

MAX_RUNTIME_MESSAGE = "Exceeded maximum runtime of "


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


def _failure(dagster_conn: psycopg.Connection, status: str, steps: list[dict[str, Any]],
             group: list[dagster_runs.DagsterRun]) -> dict[str, Any] | None:
    """The run-level reason of a failed run no step explains: a run stopped from outside its steps
    (run monitoring at its maxRunSeconds, a dead worker) leaves its step rows running."""
    if status != "failed" or not group or any(s["status"] == "failed" for s in steps):
        return None
    message = dagster_runs.failure_message(dagster_conn, group[-1].run_id)
    if message is None:
        return None
    # Dagster's run monitoring words it so (dagster/_daemon/monitoring/run_monitoring.py, pinned).
    kind = "max_runtime" if message.startswith(MAX_RUNTIME_MESSAGE) else "run_failed"
    return {"kind": kind, "message": message[:checkpoint.MAX_ERROR_CHARS]}


def _oc(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    row = rows.get("oc")
    if not row or row["status"] != "succeeded":
        return None
    plan, meta = row["output"]["plan"], row["output"]["meta"]
    return {"summary": plan["summary"], "mode": meta["mode"], "seed": meta["seed"], "fixtureKey": meta["fixtureKey"],
            "provider": meta["provider"], "model": meta["model"], "commands": len(plan["commands"]),
            # Who planned and at what cost: for a live run the real call, in replay the recorded one.
            "usage": meta.get("usage"), "latencyMs": meta.get("latencyMs"), "finishReason": meta.get("finishReason"),
            **({"dialect": meta["dialect"]} if meta.get("dialect") else {})}


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
    status = lifecycle.observe(app_conn, run, group)
    steps = _steps(rows)
    view = {
        "runId": run.run_id,
        "intentId": run.intent_id,
        "status": status,
        "traceId": run.trace_id,
        "createdAt": run.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "steps": steps,
        **({"failure": failure} if (failure := _failure(dagster_conn, status, steps, group)) else {}),
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
