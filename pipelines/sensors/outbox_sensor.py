"""The reconciler: launch every committed app run that has no Dagster run yet.

Covers an API crash between commit and launch and a webserver outage. ``run_key`` = app run id
makes Dagster create at most one run per key for this sensor, and runs the API launched are found
by their ``app/run_id`` tag first, so no accepted run is lost and none is launched twice.
"""

from dagster import DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext, SkipReason, sensor

from pipelines.jobs.intent import intent_job
from pipelines.orchestration.dagster_runs import APP_RUN_TAG
from pipelines.orchestration.lifecycle import LAUNCH_GRACE_S, intent_run_config, launch_tags
from pipelines.sensors.databases import app_connection
from pipelines.store import repo


@sensor(job=intent_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def intent_outbox(context: SensorEvaluationContext) -> list[RunRequest] | SkipReason:
    requests = []
    with app_connection() as conn, conn.transaction():
        for run in repo.unlaunched_runs(conn, older_than_s=LAUNCH_GRACE_S):
            if context.instance.get_run_ids(RunsFilter(tags={APP_RUN_TAG: run.run_id}), limit=1):
                repo.mark_launched(conn, run.run_id)
                continue
            requests.append(RunRequest(run_key=run.run_id, run_config=intent_run_config(run.run_id), tags=launch_tags(run)))
    if not requests:
        return SkipReason("every committed run has a Dagster run")
    context.log.info(f"launching {len(requests)} committed run(s) the API did not: "
                     + ", ".join(str(r.run_key) for r in requests))
    return requests
