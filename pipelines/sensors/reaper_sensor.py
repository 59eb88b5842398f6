
from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from pipelines.reaper import reap
from pipelines.resources.app_db import AppDatabase


# 5 s is Dagster's floor for sensor ticks (MIN_INTERVAL_LOOP_TIME), whatever is asked for.
@sensor(minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def run_reaper(context: SensorEvaluationContext, app_db: AppDatabase) -> SkipReason:
    with app_db.connection() as conn:
        reaped = reap(context.instance, conn)
    for run_id in reaped:
        context.log.warning(f"reaped run {run_id}: its worker is gone; the retry daemon resumes it")
    return SkipReason(f"reaped {len(reaped)} run(s): {', '.join(reaped)}" if reaped else "no abandoned runs")
