"""Long-polls wake on Dagster's own NOTIFY: the pin on dagster-postgres, and the listener."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRun, instance_for_test

from api.run_events import CHANNEL, FALLBACK_S, RunEvents
from pipelines.settings import sqlalchemy_psycopg2
from scripts.polling import poll
from tests.conftest import TestDatabases


@pytest.fixture
def events(test_databases: TestDatabases) -> Iterator[RunEvents]:
    listener = RunEvents(test_databases.dagster_url)
    listener.start()
    poll("the listener to LISTEN", lambda: listener.listening, 10)
    yield listener
    listener.stop()


def test_dagster_postgres_notifies_each_stored_event(test_databases: TestDatabases) -> None:
    """If an upgrade drops the NOTIFY, long-polls silently degrade to FALLBACK_S polls: fail here."""
    url = sqlalchemy_psycopg2(test_databases.dagster_url)
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn, \
            instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        assert isinstance(instance, DagsterInstance)
        conn.execute(f"LISTEN {CHANNEL}")
        run_id = str(uuid.uuid4())
        instance.add_run(DagsterRun(job_name="hello_job", run_id=run_id))
        instance.report_engine_event("hello", instance.get_run_by_id(run_id))
        payloads = [n.payload for n in conn.notifies(timeout=5, stop_after=1)]
    assert payloads and payloads[0].startswith(run_id + "_")


def test_wait_wakes_on_an_event_of_its_runs_only(events: RunEvents, test_databases: TestDatabases) -> None:
    since = events.mark()
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, 'run-a_41'")
        t0 = time.monotonic()
        assert events.wait(["run-a"], since, 10)
        assert time.monotonic() - t0 < FALLBACK_S
        since = events.mark()
        conn.execute(f"NOTIFY {CHANNEL}, 'run-b_42'")
        t0 = time.monotonic()
        assert not events.wait(["run-a"], since, 10)  # someone else's event: the fallback bound only
        assert FALLBACK_S * 0.9 <= time.monotonic() - t0 < FALLBACK_S * 4


def test_an_event_stored_before_the_wait_is_not_missed(events: RunEvents, test_databases: TestDatabases) -> None:
    since = events.mark()  # taken before "reading the view"
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, 'run-c_7'")
    poll("the event to arrive", lambda: events.mark() > since, 5)
    t0 = time.monotonic()
    assert events.wait(["run-c"], since, 10)
    assert time.monotonic() - t0 < 0.1
