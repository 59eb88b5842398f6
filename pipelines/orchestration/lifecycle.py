"""What every launch of an intent run carries, whoever launches it (API or reconciler)."""

from __future__ import annotations

from typing import Any

from pipelines.orchestration.dagster_runs import APP_RUN_TAG
from pipelines.store.repo import Run

INTENT_JOB = "intent_job"
TRACE_TAG = "app/trace_id"
# The API launches at once; the reconciler only touches runs older than this, so the two
# never race for a run the API is still launching (the API also holds the row lock meanwhile).
LAUNCH_GRACE_S = 10.0


def launch_tags(run: Run) -> dict[str, str]:
    tags = {APP_RUN_TAG: run.run_id}
    if run.trace_id:
        tags[TRACE_TAG] = run.trace_id
    return tags


def intent_run_config(run_id: str) -> dict[str, Any]:
    return {"ops": {name: {"config": {"run_id": run_id}} for name in ("oc_plan", "sandbox_run", "persist")}}


def crashdemo_run_config(wf_id: str, crash_at: str = "none", pause_s: float = 0.0,
                         fail_always: bool = False) -> dict[str, Any]:
    return {
        "ops": {
            "s1": {"config": {"wf_id": wf_id}},
            "s2": {"config": {"wf_id": wf_id, "crash_at": crash_at, "pause_s": pause_s, "fail_always": fail_always}},
        }
    }
