"""Deliver the failure alerts queued in ``app.alerts`` (pipelines/orchestration/alerts.py).

The secret comes from the settings, not a Dagster ``EnvVar``: sensors take no resources
(pipelines/sensors/databases.py), and the settings keep it out of every repr.
"""

from urllib.parse import urlsplit

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from pipelines.orchestration import alerts
from pipelines.sensors import EVERY_LOOP
from pipelines.sensors.databases import app_connection
from pipelines.settings import load


# Every 5 s (the daemon's loop): an alert's first attempt follows its run's final status by about a tick.
@sensor(minimum_interval_seconds=EVERY_LOOP, default_status=DefaultSensorStatus.RUNNING)
def alert_delivery(context: SensorEvaluationContext) -> SkipReason:
    settings = load()
    if not (settings.alert_urls and settings.alert_secret):  # load() refuses URLs without a secret
        return SkipReason("alerts off: HARNESS_ALERT_URLS is unset")
    with app_connection() as conn:
        attempts = alerts.deliver_due(conn, secret=settings.alert_secret, timeout_s=settings.alert_timeout_s)
    failed = [a for a in attempts if a.error]
    for a in failed:
        # The host only: a webhook URL often carries its own token in the path.
        context.log.warning(f"alert {a.event_id} to {urlsplit(a.url).hostname} not delivered, will retry: {a.error}")
    return SkipReason(f"delivered {len(attempts) - len(failed)} alert(s), {len(failed)} failed")
