from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from pipelines.orchestration.status_sync import Cursor, sync
from pipelines.sensors import EVERY_LOOP
from pipelines.sensors.databases import app_connection, dagster_connection


# The stored status lags Dagster by at most about one tick (5 s, the daemon's loop) plus its work.
@sensor(minimum_interval_seconds=EVERY_LOOP, default_status=DefaultSensorStatus.RUNNING)
def run_status_sync(context: SensorEvaluationContext) -> SkipReason:
    with dagster_connection() as dagster, app_connection() as app:
        observed, cursor = sync(app, dagster, Cursor.decode(context.cursor))
    context.update_cursor(cursor.encode())
    return SkipReason(f"observed {observed} run(s)")
