"""The one code location: every job, sensor, schedule and resource of the harness."""

from __future__ import annotations

from dagster import Definitions, EnvVar

from pipelines.jobs.crashdemo import crashdemo
from pipelines.jobs.hello import hello_job
from pipelines.resources.app_db import AppDatabase
from pipelines.sensors.reaper_sensor import run_reaper

defs = Definitions(
    jobs=[hello_job, crashdemo],
    sensors=[run_reaper],
    resources={"app_db": AppDatabase(url=EnvVar("APP_DATABASE_URL"))},
)
