"""The databases a sensor reads, from the variables the stack sets for every process.

Sensors take no Dagster resources on purpose: for a sensor with resources, Dagster builds a
``DagsterInstance`` on every tick, idle or not (``SensorEvaluationContext.resources``, dagster
1.13), which cost ~10 new Postgres sessions per tick and most of the idle code server's CPU.
Without them, an idle tick is one query per database and ``context.instance`` is built only
when a sensor has something to write.
"""

from __future__ import annotations

import os

import psycopg

from pipelines.store import db


def _url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        raise RuntimeError(f"{name} is not set: start the code server through `mise run up` (scripts/stack.py)")
    return url


def app_connection() -> psycopg.Connection:
    """The app database (``APP_DATABASE_URL``), autocommit: callers open explicit transactions."""
    return db.connect(_url("APP_DATABASE_URL"), autocommit=True)


def dagster_connection() -> psycopg.Connection:
    """Dagster's storage database (``DAGSTER_DATABASE_URL``, psycopg URL), for reads."""
    return db.connect(_url("DAGSTER_DATABASE_URL"), autocommit=True)
