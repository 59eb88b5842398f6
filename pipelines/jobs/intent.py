"""The intent job: OC producer -> sandbox runner -> persist, one Dagster run per app run.

Every op checkpoints its output in ``app.run_steps`` keyed by (app run id, step) in the same
transaction as its effects (artifacts), and on a retry or re-execution reads the checkpoint
instead of redoing the work: the OC provider is never called again for a committed step.
Materializations go to three fixed asset keys, declared below as asset specs so the Dagster UI's
catalog and lineage explain the pipeline; the app ids are in each materialization's metadata.
"""

# No "from __future__ import annotations" in op modules: Dagster reads config and resource
# types from the runtime annotations.
from collections.abc import Iterator
from typing import Any

import psycopg
from dagster import (
    AssetMaterialization,
    AssetSpec,
    Config,
    Failure,
    In,
    Nothing,
    OpExecutionContext,
    Out,
    in_process_executor,
    job,
    op,
)

from pipelines import telemetry
from pipelines.jobs.steps import checkpointed
from pipelines.oc.errors import OCError
from pipelines.oc.resource import OCProducer
from pipelines.orchestration.lifecycle import JobTarget
from pipelines.resources.app_db import AppDatabase
from pipelines.sandbox.errors import ArtifactTooLarge, SandboxError
from pipelines.store import checkpoint, repo

RETRY_TAGS = {"dagster/max_retries": "3", "dagster/retry_strategy": "FROM_FAILURE"}
PLAN_KEY, SANDBOX_KEY, RESULT_KEY = ["intent", "plan"], ["intent", "sandbox"], ["intent", "result"]
# Observed, not computed by Dagster: the ops of intent_job record materializations on these keys
# (one per app run, its ids in the metadata); the specs give them a group, a description and the
# plan -> sandbox -> result lineage that the ops' order already implies.
INTENT_ASSETS = [
    AssetSpec(PLAN_KEY, group_name="intent", kinds={"postgres"},
              description="The OC producer's schema-checked plan for an app run (artifact plan.json); "
                          "materialized by intent_job's oc_plan op."),
    AssetSpec(SANDBOX_KEY, deps=[PLAN_KEY], group_name="intent", kinds={"postgres"},
              description="What the sandbox did with the plan's commands: exit codes, isolation, stdout "
                          "and files (artifacts sandbox/<command>/...); materialized by sandbox_run."),
    AssetSpec(RESULT_KEY, deps=[SANDBOX_KEY], group_name="intent", kinds={"postgres"},
              description="The persisted run summary (artifact result.json, its sha256 in the metadata); "
                          "materialized by persist."),
]
# The steps in the order the RunView lists them (checkpoint names, not op names).
STEPS = ("oc", "sandbox", "persist")


class IntentRunConfig(Config):
    run_id: str


def _load_run(conn: psycopg.Connection, run_id: str) -> repo.Run:
    run = repo.get_run(conn, run_id)
    if run is None:
        raise Failure(description=f"app run {run_id} does not exist", allow_retries=False)
    if run.canceled_at is not None:
        raise Failure(description=f"app run {run_id} was canceled", allow_retries=False)
    return run


def _ids(run: repo.Run) -> dict[str, Any]:
    return {"intent_id": run.intent_id, "app_run_id": run.run_id, "trace_id": run.trace_id or ""}


def _upstream(conn: psycopg.Connection, run_id: str, step: str) -> dict[str, Any]:
    """An upstream step's committed output: ops pass data through Postgres, not Dagster's IO
    manager (pickles under DAGSTER_HOME would tie a retry to the host that wrote them)."""
    output = checkpoint.output(conn, run_id, step)
    if output is None:
        raise Failure(description=f"step {step} of {run_id} has no committed output", allow_retries=False)
    return output


@op(out=Out(Nothing))
def oc_plan(context: OpExecutionContext, config: IntentRunConfig, app_db: AppDatabase,
            oc: OCProducer) -> Iterator[Any]:
    with app_db.connection() as conn:
        run = _load_run(conn, config.run_id)

        def work(_attempt: int) -> tuple[dict[str, Any], checkpoint.Effect]:
            intent = repo.get_intent(conn, run.intent_id)
            assert intent is not None  # foreign key
            oc_options = run.options.get("oc", {})
            try:
                produced = oc.produce(intent, mode=oc_options.get("mode"), seed=oc_options.get("seed")).as_dict()
            except OCError as exc:
                said = f" (provider said: {exc.detail})" if exc.detail else ""
                raise checkpoint.StepError(exc.kind, exc.message + said) from exc
            plan = repo.canonical_json(produced["plan"])
            return produced, lambda c: repo.insert_artifact(c, run_id=run.run_id, step="oc", name="plan.json",
                                                            content=plan)

        step = checkpointed(context, conn, run_id=run.run_id, step="oc", work=work, trace_id=run.trace_id)
    output, meta = step.output, step.output["meta"]
    yield AssetMaterialization(asset_key=PLAN_KEY, description=output["plan"]["summary"], metadata={
        **_ids(run), "oc_mode": meta["mode"], "oc_model": meta["model"] or "", "oc_provider": meta["provider"],
        "fixture_key": meta["fixtureKey"], "commands": len(output["plan"]["commands"]),
        "reused_checkpoint": step.reused,
    })


# Resources by key here: the sandbox test double is a plain object, not a ConfigurableResource.
@op(required_resource_keys={"app_db", "sandbox"}, ins={"after_oc": In(Nothing)}, out=Out(Nothing))
def sandbox_run(context: OpExecutionContext, config: IntentRunConfig) -> Iterator[Any]:
    app_db: AppDatabase = context.resources.app_db
    sandbox = context.resources.sandbox
    with app_db.connection() as conn:
        run = _load_run(conn, config.run_id)

        def work(_attempt: int) -> tuple[dict[str, Any], checkpoint.Effect]:
            plan = _upstream(conn, run.run_id, "oc")["plan"]
            results = []
            for command in plan["commands"]:
                job_spec = {"command": command["run"], "files": plan["files"], "timeout_ms": command["timeoutMs"],
                            "env": {}}
                try:
                    with telemetry.span(telemetry.SANDBOX_SPAN, {"harness.command": command["name"]}) as span:
                        result = sandbox.run(job_spec)
                        if span is not None:
                            span.set_attributes({"harness.exit_code": result["exitCode"],
                                                 "harness.timed_out": result["timedOut"]})
                    results.append({"name": command["name"], "result": result})
                except ArtifactTooLarge as exc:
                    # The same plan leaves the same file: a retry would fail the same way.
                    raise checkpoint.StepError("artifact_too_large", f"{command['name']!r} left {exc}",
                                               retryable=False) from exc
                except SandboxError as exc:
                    raise checkpoint.StepError("sandbox_error", f"could not run {command['name']!r}: {exc}") from exc

            def effect(c: psycopg.Connection) -> None:
                for item in results:
                    res = item["result"]
                    base = f"sandbox/{item['name']}"
                    repo.insert_artifact(c, run_id=run.run_id, step="sandbox", name=f"{base}/stdout",
                                         content=res["stdout"].encode())
                    for f in res["files"]:
                        if "content" in f:
                            repo.insert_artifact(c, run_id=run.run_id, step="sandbox", name=f"{base}/files/{f['path']}",
                                                 content=f["content"].encode())

            return {"results": results}, effect

        step = checkpointed(context, conn, run_id=run.run_id, step="sandbox", work=work, trace_id=run.trace_id)
    results = step.output["results"]
    backends = sorted({r["result"]["isolation"]["backend"] for r in results})
    yield AssetMaterialization(asset_key=SANDBOX_KEY, metadata={
        **_ids(run), "exit_codes": ",".join(str(r["result"]["exitCode"]) for r in results),
        "duration_ms": sum(r["result"]["durationMs"] for r in results),
        "isolation_backend": ",".join(backends),
        "file_count": sum(len(r["result"]["files"]) for r in results),
        "reused_checkpoint": step.reused,
    })


@op(ins={"after_sandbox": In(Nothing)}, out=Out(Nothing))
def persist(context: OpExecutionContext, config: IntentRunConfig, app_db: AppDatabase) -> Iterator[Any]:
    with app_db.connection() as conn:
        run = _load_run(conn, config.run_id)

        def work(_attempt: int) -> tuple[dict[str, Any], checkpoint.Effect]:
            planned = _upstream(conn, run.run_id, "oc")
            executed = _upstream(conn, run.run_id, "sandbox")
            summary = {
                "runId": run.run_id, "intentId": run.intent_id, "traceId": run.trace_id,
                "plan": planned["plan"]["summary"], "oc": planned["meta"],
                "commands": [{"name": r["name"], "exitCode": r["result"]["exitCode"],
                              "timedOut": r["result"]["timedOut"],
                              "backend": r["result"]["isolation"]["backend"]} for r in executed["results"]],
            }
            document = repo.canonical_json(summary)
            return {"sha256": repo.sha256(document)}, lambda c: repo.insert_artifact(
                c, run_id=run.run_id, step="persist", name="result.json", content=document)

        step = checkpointed(context, conn, run_id=run.run_id, step="persist", work=work, trace_id=run.trace_id)
        artifact_count = len(repo.artifacts(conn, run.run_id))
    yield AssetMaterialization(asset_key=RESULT_KEY, metadata={
        **_ids(run), "artifacts": artifact_count, "result_sha256": step.output["sha256"],
        "reused_checkpoint": step.reused,
    })


@job(executor_def=in_process_executor, tags=RETRY_TAGS)
def intent_job() -> None:
    persist(sandbox_run(oc_plan()))


def run_config(run_id: str) -> dict[str, Any]:
    """Every op of the job gets the app run id (from the job's own nodes, not a hand-kept list).

    The ``console`` logger is named so Dagster uses the job's own (the JSON lines of
    pipelines/resources/loggers.py when ``HARNESS_LOG_FORMAT=json``) instead of its colored default,
    at its default's level (DEBUG: the run events)."""
    return {"ops": {node.name: {"config": {"run_id": run_id}} for node in intent_job.nodes},
            "loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


INTENT = JobTarget(name=intent_job.name, run_config=run_config)
