"""The app database as a Dagster resource: one psycopg 3 connection per run worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines.store import leases, run_workers


class AppDatabase(ConfigurableResource):
    """``url`` is a psycopg URL of the app database (``APP_DATABASE_URL`` in the stack)."""

    url: str
    _conn: psycopg.Connection | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Register this process as the run's worker before any op runs, so the reaper can
        # tell a live run from one whose worker died.
        if context.run is not None:
            with self.connection() as conn:
                run_workers.register(conn, context.run.run_id, leases.current())

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection; callers open explicit transactions for their writes."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        yield self._conn
