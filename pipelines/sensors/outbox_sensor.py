"""The reconciler: launch every committed app run whose launch was never recorded.

Covers an API crash between commit and launch and a webserver outage: the daemon creates these
runs itself (a RunRequest, ``run_key`` = app run id), so it works with the webserver down. Which
runs need it is decided by the run lifecycle from Dagster's run table, and the run storage holds
at most one root run per app run, so a run the API or a client's retry launched meanwhile is
never launched twice (pipelines/orchestration/lifecycle.py).
"""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from pipelines.jobs.intent import INTENT, intent_job
from pipelines.orchestration import lifecycle
from pipelines.sensors import EVERY_LOOP
from pipelines.sensors.databases import app_connection, dagster_connection


@sensor(job=intent_job, minimum_interval_seconds=EVERY_LOOP, default_status=DefaultSensorStatus.RUNNING)
def intent_outbox(context: SensorEvaluationContext) -> list[RunRequest] | SkipReason:
    with app_connection() as conn, dagster_connection() as dconn:
        pending = lifecycle.reconcile(conn, dconn)
    if not pending:
        return SkipReason("every committed run has a Dagster run")
    context.log.info(f"launching {len(pending)} committed run(s) the API did not: "
                     + ", ".join(run.run_id for run in pending))
    return [RunRequest(run_key=run.run_id, run_config=INTENT.run_config(run.run_id), tags=lifecycle.reconciler_tags(run))
            for run in pending]
