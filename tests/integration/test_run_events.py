"""Long-polls wake on Dagster's own NOTIFY: the pin on dagster-postgres, and the listener."""

from __future__ import annotations

import threading
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
    """``wait`` is True only when one of its runs had an event (False: the fallback bound passed)."""
    since = events.mark()
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, 'run-a_41'")
        assert events.wait(["run-a"], since, 10)
        since = events.mark()
        conn.execute(f"NOTIFY {CHANNEL}, 'run-b_42'")
        poll("run-b's event to arrive", lambda: events.mark() > since, 5)
        assert not events.wait(["run-a"], since, 10)  # someone else's event does not wake it


def test_a_wait_is_cut_at_the_fallback_bound(events: RunEvents) -> None:
    """With nothing for its runs, ``wait`` returns after FALLBACK_S, not the caller's timeout: the
    long-poll re-reads then for what makes no Dagster event. The join's deadline is a guard
    against the hour-long wait, not a speed claim."""
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(events.wait(["run-z"], events.mark(), 3600)),
                              daemon=True)
    waiter.start()
    waiter.join(60 * FALLBACK_S)
    assert answers == [False]


def test_an_event_stored_before_the_wait_is_not_missed(events: RunEvents, test_databases: TestDatabases) -> None:
    since = events.mark()  # taken before "reading the view"
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, 'run-c_7'")
    poll("the event to arrive", lambda: events.mark() > since, 5)
    assert events.wait(["run-c"], since, 10)  # True: found already there, not the fallback's False
