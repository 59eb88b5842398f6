"""The one code location: every job, sensor, schedule and resource of the harness."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from pipelines.jobs.crashdemo import crashdemo
from pipelines.jobs.hello import hello_job
from pipelines.jobs.intent import intent_job
from pipelines.jobs.soak import crashdemo_soak, crashdemo_soak_schedule
from pipelines.oc.resource import OCResource
from pipelines.resources.app_db import AppDatabase
from pipelines.sandbox.resource import SandboxResource
from pipelines.sensors.outbox_sensor import intent_outbox
from pipelines.sensors.reaper_sensor import run_reaper
from pipelines.settings import load


def _optional_env(name: str) -> EnvVar | None:
    """EnvVar (read at launch, hidden in the UI) when the variable exists at all: an EnvVar of an
    unset variable fails every run's config, and replay mode needs no provider settings."""
    return EnvVar(name) if name in os.environ else None


defs = Definitions(
    jobs=[intent_job, crashdemo, hello_job, crashdemo_soak],
    schedules=[crashdemo_soak_schedule],
    sensors=[intent_outbox, run_reaper],
    resources={
        "app_db": AppDatabase(url=EnvVar("APP_DATABASE_URL")),
        # Replay (recorded fixtures) unless a run asks for record/live (the API allows those only
        # when HARNESS_OC_MODES does); recordings go under the data dir, never into the package.
        "oc": OCResource(base_url=_optional_env("OC_BASE_URL"), model=_optional_env("OC_MODEL"),
                         api_key=_optional_env("OC_API_KEY"), recordings_dir=str(load().oc_recordings_dir)),
        "sandbox": SandboxResource(),
    },
)
