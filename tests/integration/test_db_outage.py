"""A PostgreSQL outage: every route that needs the database answers the 503 envelope instead of
parking the request, service resumes once PostgreSQL is back, and every 201 has its row.

On a private embedded server in a tmp dir, so stopping it disturbs no other test. The deadlines
are guards against the old behaviour (requests parked for the pool's 30 s, service back 10-25 s
after PostgreSQL), not speed claims: the figures are ``mise run bench:outage``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from pipelines.settings import Settings, database_name, load, with_database
from pipelines.store import db, localdb, migrate
from scripts.polling import poll
from tests.api_server import harness_state, serve

GUARD_S = 10.0  # far above the pools' bounds (api/pools.py), far below the 30 s requests were parked
BODY = {"goal": "survive an outage", "inputs": {}, "constraints": {}, "connectors": []}
UNKNOWN_RUN = "run_" + "0" * 32
ROUTES = {"POST /intents": ("POST", "/intents", BODY), f"GET /runs/{UNKNOWN_RUN}": ("GET", f"/runs/{UNKNOWN_RUN}", None),
          "GET /healthz": ("GET", "/healthz", None)}


@pytest.fixture
def private_pg(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str, str]]:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load()
    app_url = localdb.up(settings)[1]
    try:
        dagster_url = with_database(app_url, database_name(app_url) + "_dagster")
        db.ensure_database(app_url)
        db.ensure_database(dagster_url)  # empty: an unknown run's 404 and /healthz read no Dagster table
        migrate.migrate(app_url)
        yield settings, app_url, dagster_url
    finally:
        localdb.down(settings)


def _ask(base_url: str, route: str) -> tuple[int | str, Any]:
    """(status, body), or ("no answer", error) when none came within the guard."""
    method, path, body = ROUTES[route]
    try:
        resp = httpx.request(method, base_url + path, json=body, timeout=GUARD_S)
    except httpx.TimeoutException as exc:
        return "no answer", repr(exc)
    return resp.status_code, resp.json()


def test_an_outage_answers_503_and_service_resumes_when_postgres_is_back(
        private_pg: tuple[Settings, str, str]) -> None:
    settings, app_url, dagster_url = private_pg
    with serve(harness_state(app_url, dagster_url)) as api:
        assert {route: _ask(api.base_url, route)[0] for route in ROUTES} == {
            "POST /intents": 201, f"GET /runs/{UNKNOWN_RUN}": 404, "GET /healthz": 200}

        accepted: list[str] = []  # every intent id answered 201, before, during and after the outage
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                status, body = _ask(api.base_url, "POST /intents")
                if status == 201:
                    accepted.append(body["intentId"])

        writing = threading.Thread(target=writer, name="writer", daemon=True)
        writing.start()
        try:
            localdb.down(settings)
            with ThreadPoolExecutor(len(ROUTES)) as pool:
                during = dict(zip(ROUTES, pool.map(lambda r: _ask(api.base_url, r), ROUTES), strict=True))
            unavailable = {"error": {"code": "unavailable", "message": "a database is unavailable; retry later",
                                     "details": []}}
            assert during["POST /intents"] == (503, unavailable)
            assert during[f"GET /runs/{UNKNOWN_RUN}"] == (503, unavailable)
            assert during["GET /healthz"][0] == 503 and during["GET /healthz"][1]["status"] == "down", during

            localdb.up(settings)
            restarted_at = len(accepted)
            poll("every route to answer again", lambda: all(
                isinstance(status := _ask(api.base_url, r)[0], int) and status < 500 for r in ROUTES), GUARD_S)
            poll("a write accepted after the restart", lambda: len(accepted) > restarted_at, GUARD_S)
        finally:
            stop.set()
            writing.join(2 * GUARD_S)

    with psycopg.connect(app_url) as conn:
        stored = {r[0] for r in conn.execute("SELECT intent_id FROM app.intents WHERE intent_id = ANY(%s)",
                                             (accepted,))}
    assert stored == set(accepted)  # nothing answered 201 is lost
