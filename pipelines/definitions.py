"""The one code location: every job, sensor, schedule and resource of the harness."""

from __future__ import annotations

from dagster import Definitions, EnvVar

from pipelines.jobs.crashdemo import crashdemo
from pipelines.jobs.hello import hello_job
from pipelines.jobs.intent import intent_job
from pipelines.oc.resource import OCResource
from pipelines.resources.app_db import AppDatabase
from pipelines.sandbox.resource import SandboxResource
from pipelines.sensors.outbox_sensor import intent_outbox
from pipelines.sensors.reaper_sensor import run_reaper

defs = Definitions(
    jobs=[intent_job, crashdemo, hello_job],
    sensors=[intent_outbox, run_reaper],
    resources={
        "app_db": AppDatabase(url=EnvVar("APP_DATABASE_URL")),
        # Replay (recorded fixtures) unless a run asks for record/live; the provider settings are
        # read at launch and the key is hidden in the UI. The stack sets them to "" when unset.
        "oc": OCResource(base_url=EnvVar("OC_BASE_URL"), model=EnvVar("OC_MODEL"), api_key=EnvVar("OC_API_KEY")),
        "sandbox": SandboxResource(),
    },
)
