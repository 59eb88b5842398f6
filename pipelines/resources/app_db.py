"""The app database as a Dagster resource: one psycopg 3 connection per run worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines import logs, telemetry
from pipelines.store import leases, run_workers


class AppDatabase(ConfigurableResource):
    """``url`` is a psycopg URL of the app database (``APP_DATABASE_URL`` in the stack)."""

    url: str
    _conn: psycopg.Connection | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Register this process as the run's worker before any op runs, so the reaper can
        # tell a live run from one whose worker died.
        if context.run is not None:
            logs.bind(dagster_run_id=context.run.run_id, app_run_id=context.run.tags.get("app/run_id"))
            # A traced run (its launch tagged it): spans for its statements and HTTP calls, set
            # up before this resource's connection opens.
            traced = telemetry.TRACEPARENT_TAG in context.run.tags and telemetry.setup("run-worker")
            if traced:
                telemetry.instrument_worker()
            with self.connection() as conn:
                run_workers.register(conn, context.run.run_id, leases.current())
                if traced:
                    _start_run_span(conn, context)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if telemetry.end_run() and context.run is not None and self._conn is not None and not self._conn.closed:
            run_workers.mark_span_ended(self._conn, context.run.run_id)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection; callers open explicit transactions for their writes."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                         options=leases.session_options())
        yield self._conn


def _start_run_span(conn: psycopg.Connection, context: InitResourceContext) -> None:
    """This worker's run span; first the span of the attempt before it when that worker was
    killed (it never ended its own), from the run's rows."""
    run = context.run
    assert run is not None
    lost = []
    parent = run.parent_run_id
    if parent is not None and context.instance is not None and run_workers.span_lost(conn, parent):
        record = context.instance.get_run_record_by_id(parent)
        if record is not None and record.start_time is not None:
            end = record.end_time or record.start_time
            lost.append(telemetry.LostAttempt(
                dagster_run_id=parent, parent_run_id=record.dagster_run.parent_run_id,
                start_ns=int(record.start_time * 1e9), end_ns=int(end * 1e9),
                status=record.dagster_run.status.value))
    telemetry.start_run(telemetry.Attempt(
        dagster_run_id=run.run_id, job_name=run.job_name, tags=run.tags, parent_run_id=parent,
        app_run_id=run.tags.get("app/run_id")), lost)
    if parent is not None and lost:
        run_workers.mark_span_ended(conn, parent)  # recorded now: a second successor skips it
