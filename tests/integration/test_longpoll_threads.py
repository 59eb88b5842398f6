"""Open long-polls (``GET /runs/{id}?wait=30``) hold no worker thread: with more of them open than
anyio has threads, ``/healthz`` and ``POST /intents`` still answer, and a cancel wakes them all.

The guard is a deadline far below the 30 s the long-polls stay open (a sync long-poll held its
thread that long, and the other routes queued behind it), not a speed claim: the figures are
``mise run bench:longpoll``'s.
"""

from __future__ import annotations

import asyncio

import httpx
import psycopg

from pipelines.store import repo
from scripts.polling import poll
from tests.api_server import harness_state, serve
from tests.conftest import TestDatabases

ANYIO_THREADS = 40  # anyio's default worker-thread limit, which sync routes and run_in_threadpool share
N_POLLS = 60
GUARD_S = 10.0
BODY = {"goal": "wait a while", "inputs": {}, "constraints": {}, "connectors": []}


def test_open_long_polls_leave_the_other_routes_answering(app_db_url: str, test_databases: TestDatabases) -> None:
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), body=BODY, idempotency_key=None)
        run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=None,
                                    options={}, idempotency_key=None)  # never launched: queued until canceled

    with serve(harness_state(app_db_url, test_databases.dagster_url)) as api:
        reads = lambda: api.state.app_pool.get_stats().get("requests_num", 0)  # noqa: E731
        before = reads()

        async def scenario() -> tuple[int, int, list[bool], int, list[tuple[int, str]]]:
            limits = httpx.Limits(max_connections=N_POLLS + 10)
            async with httpx.AsyncClient(base_url=api.base_url, limits=limits, timeout=60) as client:
                polls = [asyncio.create_task(client.get(f"/runs/{run_id}", params={"wait": 30}))
                         for _ in range(N_POLLS)]
                # Each long-poll reads its run once before it waits: as many as anyio has threads.
                await asyncio.to_thread(poll, "the long-polls to have read their run",
                                        lambda: reads() - before >= ANYIO_THREADS, GUARD_S)
                health = await client.get("/healthz", timeout=GUARD_S)
                created = await client.post("/intents", json=BODY, timeout=GUARD_S)
                still_open = [not p.done() for p in polls]
                canceled = await client.post(f"/runs/{run_id}/cancel", timeout=GUARD_S)
                answers = await asyncio.wait_for(asyncio.gather(*polls), GUARD_S)
                return (health.status_code, created.status_code, still_open, canceled.status_code,
                        [(a.status_code, a.json()["status"]) for a in answers])

        health, created, still_open, canceled, answers = asyncio.run(scenario())

    assert (health, created) == (200, 201)
    assert all(still_open)  # they were all waiting while the other routes answered
    assert canceled == 202
    assert answers == [(200, "canceled")] * N_POLLS  # the cancel woke every long-poll
