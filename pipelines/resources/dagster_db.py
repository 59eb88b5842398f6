"""Dagster's run storage database, read directly with psycopg 3 (runtime truth is rows)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource

from pipelines import db


class DagsterDatabase(ConfigurableResource):
    """``url`` is a psycopg URL of Dagster's storage database (``DAGSTER_DATABASE_URL`` in the
    stack). Sensors read candidates here with one query; building a ``DagsterInstance`` for an
    idle tick cost ~10 new Postgres sessions."""

    url: str

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with db.connect(self.url, autocommit=True) as conn:
            yield conn
