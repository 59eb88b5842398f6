"""The intent job: OC producer -> sandbox runner -> persist, one Dagster run per app run.

Every op checkpoints its output in ``app.run_steps`` keyed by (app run id, step) in the same
transaction as its effects (artifacts), and on a retry or re-execution reads the checkpoint
instead of redoing the work: the OC provider is never called again for a committed step.
Materializations go to three fixed asset keys; the app ids are in their metadata.
"""

# No "from __future__ import annotations" in op modules: Dagster reads config and resource
# types from the runtime annotations.
from collections.abc import Iterator
from typing import Any

import psycopg
from dagster import (
    AssetMaterialization,
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

from pipelines.oc.errors import OCError
from pipelines.oc.resource import OCProducer
from pipelines.resources.app_db import AppDatabase
from pipelines.sandbox.errors import SandboxError
from pipelines.store import checkpoint, repo

RETRY_TAGS = {"dagster/max_retries": "3", "dagster/retry_strategy": "FROM_FAILURE"}
PLAN_KEY, SANDBOX_KEY, RESULT_KEY = ["intent", "plan"], ["intent", "sandbox"], ["intent", "result"]


class IntentRunConfig(Config):
    run_id: str


def _load(conn: psycopg.Connection, run_id: str) -> tuple[repo.Run, dict[str, Any]]:
    run = repo.get_run(conn, run_id)
    if run is None:
        raise Failure(description=f"app run {run_id} does not exist", allow_retries=False)
    if run.canceled_at is not None:
        raise Failure(description=f"app run {run_id} was canceled", allow_retries=False)
    intent = repo.get_intent(conn, run.intent_id)
    assert intent is not None  # foreign key
    return run, intent


def _ids(run: repo.Run) -> dict[str, Any]:
    return {"intent_id": run.intent_id, "app_run_id": run.run_id, "trace_id": run.trace_id or ""}


def _begin(context: OpExecutionContext, conn: psycopg.Connection, run: repo.Run, step: str) -> checkpoint.Attempt:
    attempt = checkpoint.begin(conn, run_id=run.run_id, step=step, dagster_run_id=context.run_id)
    context.log.info(f"trace={run.trace_id} run={run.run_id} step={step} attempt={attempt.attempt}"
                     + (" (checkpoint found: not redone)" if attempt.done else ""))
    return attempt


def _checkpoint(conn: psycopg.Connection, run_id: str, step: str) -> dict[str, Any]:
    """An upstream step's committed output: ops pass data through Postgres, not Dagster's IO
    manager (pickles under DAGSTER_HOME would tie a retry to the host that wrote them)."""
    row = repo.steps(conn, run_id).get(step)
    if row is None or row["status"] != "succeeded":
        raise Failure(description=f"step {step} of {run_id} has no committed output", allow_retries=False)
    return dict(row["output"])


@op(out=Out(Nothing))
def oc_plan(context: OpExecutionContext, config: IntentRunConfig, app_db: AppDatabase,
            oc: OCProducer) -> Iterator[Any]:
    with app_db.connection() as conn:
        run, intent = _load(conn, config.run_id)
        attempt = _begin(context, conn, run, "oc")
        output = attempt.output
        if output is None:
            oc_options = run.options.get("oc", {})
            try:
                result = oc.produce(intent, mode=oc_options.get("mode"), seed=oc_options.get("seed"))
            except OCError as exc:
                checkpoint.fail(conn, run_id=run.run_id, step="oc", error=f"{exc.kind}: {exc.detail}")
                raise Failure(description=f"OC producer failed ({exc.kind})",
                              metadata={"kind": exc.kind, "detail": (exc.detail or "")[:2000]}) from exc
            produced = result.as_dict()

            def effect(c: psycopg.Connection) -> None:
                repo.insert_artifact(c, run_id=run.run_id, step="oc", name="plan.json",
                                     content=repo.canonical_json(produced["plan"]))

            output, _ = checkpoint.commit(conn, run_id=run.run_id, step="oc", output=produced, effect=effect)
    meta = output["meta"]
    yield AssetMaterialization(asset_key=PLAN_KEY, description=output["plan"]["summary"], metadata={
        **_ids(run), "oc_mode": meta["mode"], "oc_model": meta["model"] or "", "oc_provider": meta["provider"],
        "fixture_key": meta["fixtureKey"], "commands": len(output["plan"]["commands"]),
        "reused_checkpoint": attempt.done,
    })


# Resources by key here: the sandbox test double is a plain object, not a ConfigurableResource.
@op(required_resource_keys={"app_db", "sandbox"}, ins={"after_oc": In(Nothing)}, out=Out(Nothing))
def sandbox_run(context: OpExecutionContext, config: IntentRunConfig) -> Iterator[Any]:
    app_db: AppDatabase = context.resources.app_db
    sandbox = context.resources.sandbox
    with app_db.connection() as conn:
        run, _ = _load(conn, config.run_id)
        attempt = _begin(context, conn, run, "sandbox")
        output = attempt.output
        if output is None:
            plan = _checkpoint(conn, run.run_id, "oc")["plan"]
            results = []
            for command in plan["commands"]:
                job_spec = {"command": command["run"], "files": plan["files"], "timeout_ms": command["timeoutMs"],
                            "env": {}}
                try:
                    results.append({"name": command["name"], "result": sandbox.run(job_spec)})
                except SandboxError as exc:
                    checkpoint.fail(conn, run_id=run.run_id, step="sandbox", error=str(exc))
                    raise Failure(description=f"sandbox could not run {command['name']!r}: {exc}") from exc
            computed = {"results": results}

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

            output, _ = checkpoint.commit(conn, run_id=run.run_id, step="sandbox", output=computed, effect=effect)
    results = output["results"]
    backends = sorted({r["result"]["isolation"]["backend"] for r in results})
    yield AssetMaterialization(asset_key=SANDBOX_KEY, metadata={
        **_ids(run), "exit_codes": ",".join(str(r["result"]["exitCode"]) for r in results),
        "duration_ms": sum(r["result"]["durationMs"] for r in results),
        "isolation_backend": ",".join(backends),
        "file_count": sum(len(r["result"]["files"]) for r in results),
        "reused_checkpoint": attempt.done,
    })


@op(ins={"after_sandbox": In(Nothing)}, out=Out(Nothing))
def persist(context: OpExecutionContext, config: IntentRunConfig, app_db: AppDatabase) -> Iterator[Any]:
    with app_db.connection() as conn:
        run, _ = _load(conn, config.run_id)
        attempt = _begin(context, conn, run, "persist")
        output = attempt.output
        if output is None:
            planned = _checkpoint(conn, run.run_id, "oc")
            executed = _checkpoint(conn, run.run_id, "sandbox")
            summary = {
                "runId": run.run_id, "intentId": run.intent_id, "traceId": run.trace_id,
                "plan": planned["plan"]["summary"], "oc": planned["meta"],
                "commands": [{"name": r["name"], "exitCode": r["result"]["exitCode"],
                              "timedOut": r["result"]["timedOut"],
                              "backend": r["result"]["isolation"]["backend"]} for r in executed["results"]],
            }
            document = repo.canonical_json(summary)

            def effect(c: psycopg.Connection) -> None:
                repo.insert_artifact(c, run_id=run.run_id, step="persist", name="result.json", content=document)

            output, _ = checkpoint.commit(conn, run_id=run.run_id, step="persist",
                                          output={"sha256": repo.sha256(document)}, effect=effect)
        artifact_count = len(repo.artifacts(conn, run.run_id))
    yield AssetMaterialization(asset_key=RESULT_KEY, metadata={
        **_ids(run), "artifacts": artifact_count, "result_sha256": output["sha256"],
        "reused_checkpoint": attempt.done,
    })


@job(executor_def=in_process_executor, tags=RETRY_TAGS)
def intent_job() -> None:
    persist(sandbox_run(oc_plan()))
