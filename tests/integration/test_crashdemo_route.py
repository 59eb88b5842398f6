"""POST /crashdemo launches once per wf, even when two requests for it race."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from pipelines.orchestration.dagster_client import DagsterUnavailable
from scripts.polling import poll
from tests.api_server import ServedApp, harness_state, serve


class RacingDagster:
    """Stands in for the Dagster client: the first launch holds until the second request has either
    launched too (the race the route must not lose) or waits on the first's row lock."""

    def __init__(self, app_url: str):
        self.app_url = app_url
        self.launches: list[dict[str, str]] = []

    def launch(self, job: str, run_config: dict[str, Any], tags: dict[str, str]) -> str:
        self.launches.append(tags)
        if len(self.launches) == 1:
            poll("the second request to launch or wait on the first's row lock",
                 lambda: len(self.launches) > 1 or self._lock_waiters() > 0, 30)
        return str(uuid.uuid4())

    def _lock_waiters(self) -> int:
        with psycopg.connect(self.app_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock' AND query LIKE %s",
                               ("INSERT INTO app.workflow_runs%",)).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def racing(test_databases: Any, app_db_url: str) -> Iterator[tuple[ServedApp, RacingDagster]]:
    dagster = RacingDagster(app_db_url)
    state = dataclasses.replace(harness_state(app_db_url, test_databases.dagster_url), dagster=dagster)
    with serve(state) as served:
        yield served, dagster


def test_two_concurrent_requests_for_one_wf_launch_once(racing: tuple[ServedApp, RacingDagster],
                                                        app_db_url: str) -> None:
    served, dagster = racing
    wf = f"wf-race-{uuid.uuid4().hex[:8]}"
    statuses: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=served.base_url, timeout=60) as client:
            statuses.append(client.post("/crashdemo", params={"wf": wf}).status_code)

    first = threading.Thread(target=post)
    first.start()
    poll("the first request to launch", lambda: len(dagster.launches) == 1, 30)
    second = threading.Thread(target=post)
    second.start()
    for t in (first, second):
        t.join(60)
    assert sorted(statuses) == [202, 409]
    assert len(dagster.launches) == 1
    with psycopg.connect(app_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM app.workflow_runs WHERE wf_id = %s", (wf,)).fetchone() == (1,)


def test_a_launch_dagster_refused_leaves_no_row(test_databases: Any, app_db_url: str) -> None:
    """The client is told to try again (503): the wf must not be taken by the failed attempt."""

    class Down:
        def launch(self, *args: Any) -> str:
            raise DagsterUnavailable("webserver down")

    state = dataclasses.replace(harness_state(app_db_url, test_databases.dagster_url), dagster=Down())
    with serve(state) as served, httpx.Client(base_url=served.base_url, timeout=60) as client:
        assert client.post("/crashdemo", params={"wf": "wf-refused"}).status_code == 503
    with psycopg.connect(app_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM app.workflow_runs").fetchone() == (0,)
