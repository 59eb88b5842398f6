
from dagster import DagsterInstance, DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.orchestration.reaper import reap, relaunch_abandoned_retries
from pipelines.sensors import EVERY_LOOP
from pipelines.sensors.databases import app_connection, dagster_connection
from pipelines.settings import load


# Every 5 s (the daemon's loop, Dagster's floor, whatever is asked for).
@sensor(minimum_interval_seconds=EVERY_LOOP, default_status=DefaultSensorStatus.RUNNING)
def run_reaper(context: SensorEvaluationContext) -> SkipReason:
    def instance() -> DagsterInstance:  # built on first use only: most ticks find nothing to do
        return context.instance

    with dagster_connection() as runs:
        with app_connection() as app:
            reaped = reap(runs, app, instance)
        for run_id in reaped:
            context.log.warning(f"reaped run {run_id}: its worker is gone; the retry daemon resumes it")
        relaunched = relaunch_abandoned_retries(runs, instance, DagsterClient(load().dagster_ui_url))
    for run_id in relaunched:
        context.log.warning(f"re-executed run {run_id} from failure: Dagster could not launch its retry, or lost it")
    if not reaped and not relaunched:
        return SkipReason("no abandoned runs")
    return SkipReason(f"reaped {len(reaped)} run(s) {reaped}; relaunched {len(relaunched)} retry(s) {relaunched}")
