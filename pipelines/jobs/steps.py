"""The checkpointed step as an op uses it: ``pipelines.store.checkpoint.run_step``, logged with the
run's ids, a recorded StepError raised to Dagster as a Failure."""

import psycopg
from dagster import Failure, OpExecutionContext

from pipelines import telemetry
from pipelines.store import checkpoint


def checkpointed(context: OpExecutionContext, conn: psycopg.Connection, *, run_id: str, step: str,
                 work: checkpoint.Work, trace_id: str | None = None) -> checkpoint.StepResult:
    with telemetry.op_span(context.op_def.name, {"app.run_id": run_id, "harness.step": step,
                                                  "dagster.run_id": context.run_id}) as span:
        try:
            result = checkpoint.run_step(conn, run_id=run_id, step=step, dagster_run_id=context.run_id, work=work)
        except checkpoint.StepError as exc:
            raise Failure(description=f"step {step} failed ({exc.kind}): {exc.message[:500]}",
                          metadata={"kind": exc.kind, "detail": exc.message[:2000]},
                          allow_retries=exc.retryable) from exc
        if span is not None:
            span.set_attributes({"harness.step.attempt": result.attempt, "harness.step.reused": result.reused})
        context.log.info(f"trace={trace_id} run={run_id} step={step} attempt={result.attempt}"
                         + (" (checkpoint found: not redone)" if result.reused else ""))
    return result
