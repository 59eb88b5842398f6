"""``/healthz`` latency and ``POST /intents`` throughput with and without hundreds of open long-polls
(``GET /runs/{id}?wait=30`` on runs that stay queued), in one run against one API process.

The API runs under uvicorn in its own process on a scratch database of the checkout's embedded
PostgreSQL (or ``DATABASE_URL``'s server), dropped afterwards; Dagster is unreachable, so the runs
stay queued and every long-poll waits its full 30 s. The client is one asyncio process (httpx):
N concurrent ``POST /intents`` workers and one ``/healthz`` prober asking back to back.

    .venv/bin/python -m bench.longpoll [--polls 500] [--phase-s 10] [--concurrency 8]

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.api_process import api
from bench.api_throughput import BODY, drop_database, scratch_database
from pipelines.store import db, repo

RUNS = 10  # the long-polls are spread over these
SETTLE_S = 3.0  # for the long-polls to be read once and waiting before the phase begins
WAIT_S = 30
HEALTHZ_TARGET_MS = 50.0
THROUGHPUT_TARGET = 0.80


@dataclass
class Samples:
    ms: list[float] = field(default_factory=list)  # latencies of the answers that were right
    errors: int = 0


@dataclass
class Phase:
    name: str
    polls_open: int = 0
    post: Samples = field(default_factory=Samples)
    health: Samples = field(default_factory=Samples)
    wall_s: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.post.ms) / self.wall_s


def pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(round(q / 100 * (len(data) - 1))))] if data else float("nan")


async def measure(client: httpx.AsyncClient, phase: Phase, seconds: float, concurrency: int) -> None:
    end = time.monotonic() + seconds

    async def ask(request: Callable[[], Awaitable[httpx.Response]], status: int, samples: Samples) -> None:
        """Back to back until the phase ends, timing each answer that has ``status``."""
        while time.monotonic() < end:
            began = time.perf_counter()
            try:
                ok = (await request()).status_code == status
            except httpx.HTTPError:
                ok = False
            if ok:
                samples.ms.append((time.perf_counter() - began) * 1000)
            else:
                samples.errors += 1

    began = time.perf_counter()
    await asyncio.gather(ask(lambda: client.get("/healthz"), 200, phase.health),
                         *(ask(lambda: client.post("/intents", json=BODY), 201, phase.post)
                           for _ in range(concurrency)))
    phase.wall_s = time.perf_counter() - began


async def run(url: str, run_ids: list[str], polls: int, seconds: float, concurrency: int) -> list[Phase]:
    # Two clients: httpcore scans its whole pool for every request, so the load would pay for the
    # long-polls' 500 connections in the client had they shared one.
    load_limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, limits=load_limits, timeout=WAIT_S + 30) as load, \
            httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=polls),
                              timeout=WAIT_S + 30) as waiter:
        await asyncio.gather(*(load.post("/intents", json=BODY) for _ in range(20)))  # warm-up
        without = Phase("without long-polls")
        await measure(load, without, seconds, concurrency)
        waiting = [asyncio.create_task(waiter.get(f"/runs/{run_ids[i % len(run_ids)]}", params={"wait": WAIT_S}))
                   for i in range(polls)]
        await asyncio.sleep(SETTLE_S)
        with_polls = Phase(f"with {polls} long-polls open")
        await measure(load, with_polls, seconds, concurrency)
        with_polls.polls_open = sum(not t.done() for t in waiting)  # still open when the phase ended
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    return [without, with_polls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if SETTLE_S + args.phase_s >= WAIT_S:
        parser.error(f"--phase-s must leave the long-polls open: below {WAIT_S - SETTLE_S:.0f}")

    began = time.monotonic()
    app_url, dagster_url = scratch_database()
    try:
        db.create_dagster_storage(dagster_url)  # the RunView reads Dagster's tables
        with psycopg.connect(app_url, autocommit=True) as conn:
            intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), body=BODY, idempotency_key=None)
            run_ids = [repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=None,
                                       options={}, idempotency_key=None)[0] for _ in range(RUNS)]
        with tempfile.TemporaryDirectory(prefix="bench-longpoll-") as tmp, \
                api(app_url, dagster_url, Path(tmp) / "api.log") as url:
            phases = asyncio.run(run(url, run_ids, args.polls, args.phase_s, args.concurrency))
    finally:
        drop_database(app_url)
        drop_database(dagster_url)

    print(f"machine: {os.cpu_count()} CPUs (shared with other sessions), Linux {platform.release()}, "
          f"Python {platform.python_version()}; API: uvicorn, 1 worker; client: 1 asyncio process, httpx")
    print()
    print(f"{args.phase_s:.0f} s per phase: {args.concurrency} concurrent `POST /intents` workers and one "
          f"`/healthz` prober, back to back; long-polls `GET /runs/{{id}}?wait={WAIT_S}` on {RUNS} queued runs")
    print()
    print("| phase | long-polls open at the end | POST ok | POST errors | POST req/s | POST p50 ms | POST p99 ms "
          "| /healthz n | /healthz errors | /healthz p50 ms | /healthz p99 ms | /healthz max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in phases:
        print(f"| {p.name} | {p.polls_open} | {len(p.post.ms)} | {p.post.errors} | {p.rps:.0f} | {pct(p.post.ms, 50):.1f} "
              f"| {pct(p.post.ms, 99):.1f} | {len(p.health.ms)} | {p.health.errors} | {pct(p.health.ms, 50):.1f} "
              f"| {pct(p.health.ms, 99):.1f} | {max(p.health.ms, default=float('nan')):.1f} |")
    without, with_polls = phases
    ratio = with_polls.rps / without.rps
    p99 = pct(with_polls.health.ms, 99)
    print()
    print(f"with the long-polls open: `POST /intents` keeps {ratio:.0%} of its throughput "
          f"(target ≥ {THROUGHPUT_TARGET:.0%}: {'met' if ratio >= THROUGHPUT_TARGET else 'NOT met'}); "
          f"`/healthz` p99 {p99:.1f} ms (target ≤ {HEALTHZ_TARGET_MS:.0f} ms: "
          f"{'met' if p99 <= HEALTHZ_TARGET_MS else 'NOT met'})")
    print(f"\nbench wall time: {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
