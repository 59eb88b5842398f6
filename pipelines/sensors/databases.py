"""The databases a sensor reads: the URLs `up` resolved for every process (``APP_DATABASE_URL``,
``DAGSTER_DATABASE_URL``), through the settings.

Sensors take no Dagster resources on purpose: for a sensor with resources, Dagster builds a
``DagsterInstance`` on every tick, idle or not (``SensorEvaluationContext.resources``, dagster
1.13), which cost ~10 new Postgres sessions per tick and most of the idle code server's CPU.
Without them, an idle tick is one query per database and ``context.instance`` is built only
when a sensor has something to write.
"""

from __future__ import annotations

import psycopg

from pipelines.settings import load
from pipelines.store import db


def app_connection() -> psycopg.Connection:
    """The app database, autocommit: callers open explicit transactions."""
    return db.connect(db.app_url(load()), autocommit=True)


def dagster_connection() -> psycopg.Connection:
    """Dagster's storage database (psycopg URL), for reads."""
    return db.connect(db.dagster_url(load()), autocommit=True)
