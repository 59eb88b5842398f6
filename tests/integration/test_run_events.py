"""Long-polls wake on Dagster's own NOTIFY: the pin on dagster-postgres, and the listener."""

from __future__ import annotations

import asyncio
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


def _notify(url: str, events: RunEvents, payload: str) -> None:
    """Send one event as dagster-postgres does, and wait until the listener heard it."""
    since = events.mark()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, '{payload}'")
    poll(f"{payload} to arrive", lambda: events.mark() > since, 5)


def _wait(events: RunEvents, dagster_run_ids: list[str], since: int, timeout_s: float) -> bool:
    return asyncio.run(events.wait("run_app", dagster_run_ids, since, timeout_s))


def test_wait_wakes_on_an_event_of_its_runs_only(events: RunEvents, test_databases: TestDatabases) -> None:
    """``wait`` is True only when one of its runs had an event (False: its timeout passed)."""
    for known in ("run-a_40", "run-b_1"):  # known runs from here on: no "new run" wakes
        _notify(test_databases.dagster_url, events, known)
    since = events.mark()
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}, 'run-a_41'")
        assert _wait(events, ["run-a"], since, 10)
    since = events.mark()
    _notify(test_databases.dagster_url, events, "run-b_42")
    assert not _wait(events, ["run-a"], since, 1)  # someone else's event does not wake it


def test_the_first_event_of_a_new_run_wakes_every_wait(events: RunEvents, test_databases: TestDatabases) -> None:
    """A retry or a first launch is a Dagster run the view did not list yet: it may be this group's."""
    since = events.mark()
    _notify(test_databases.dagster_url, events, "run-new_1")
    assert _wait(events, ["run-a"], since, 10)


def test_touch_wakes_the_waits_of_its_app_run(events: RunEvents) -> None:
    """A cancel before any launch changes the status with no Dagster event: the route touches the run."""

    async def touched_while_waiting() -> bool:
        waiting = asyncio.create_task(events.wait("run_app", [], events.mark(), 3600))
        await asyncio.sleep(0)  # the wait is registered
        events.touch("run_app")
        return await asyncio.wait_for(waiting, 60)

    assert asyncio.run(touched_while_waiting())


def test_without_the_listener_a_wait_is_cut_at_the_fallback_bound(test_databases: TestDatabases) -> None:
    """With nothing heard and no listener, ``wait`` returns after FALLBACK_S, not the caller's
    timeout: the long-poll re-reads then, having no events to go by. The wait_for's deadline is a
    guard against the hour-long wait, not a speed claim."""
    never_started = RunEvents(test_databases.dagster_url)
    answer = asyncio.run(asyncio.wait_for(never_started.wait("run_app", ["run-z"], never_started.mark(), 3600),
                                          60 * FALLBACK_S))
    assert answer is False


def test_an_event_stored_before_the_wait_is_not_missed(events: RunEvents, test_databases: TestDatabases) -> None:
    _notify(test_databases.dagster_url, events, "run-c_6")  # a known run: no "new run" wake
    since = events.mark()  # taken before "reading the view"
    _notify(test_databases.dagster_url, events, "run-c_7")
    assert _wait(events, ["run-c"], since, 10)  # True: found already there, not the timeout's False
