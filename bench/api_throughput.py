"""``POST /intents`` throughput and latency at fixed concurrency, beside a bare FastAPI endpoint.

Both servers run under uvicorn in their own process (one at a time, so they never compete for
the CPU), on free ports in 3300-3399. The real app writes to a scratch database created on the
embedded PostgreSQL (or ``DATABASE_URL``'s server) and dropped afterwards; Dagster is not needed
for this route. The client is one asyncio process with N concurrent httpx keep-alive connections.

    .venv/bin/python bench/api_throughput.py [--requests 2000] [--concurrency 8]

Prints markdown tables. Bounded: each phase stops at its time budget and reports what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines.settings import load, with_database  # noqa: E402
from pipelines.store import db, localdb, migrate  # noqa: E402

PORTS = range(3300, 3400)
BODY = {"goal": "write hello.txt containing hi", "inputs": {"name": "hi"}, "constraints": {}, "connectors": []}
START_TIMEOUT_S = 60.0
PHASE_BUDGET_S = 25.0

BARE_APP = """
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

@app.post("/intents")
async def create(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"intentId": "int_" + "0" * 32}, status_code=201)

@app.get("/healthz")
async def health() -> dict:
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_ports(n: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise RuntimeError(f"fewer than {n} free ports in {PORTS.start}-{PORTS.stop - 1}")


@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    errors: int
    wall_s: float

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(round(q / 100 * (len(data) - 1))))] if data else float("nan")


class Server:
    """A uvicorn process, stopped by its PID (SIGINT, then SIGKILL) however the bench ends."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str]):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + path, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready on {self.url} within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def load_test(name: str, url: str, requests: int, concurrency: int, warmup: int) -> Result:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + PHASE_BUDGET_S
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(client.post("/intents", json=BODY) for _ in range(warmup)))

        async def worker() -> None:
            nonlocal errors, issued
            while issued < requests and time.monotonic() < deadline:
                issued += 1
                start = time.perf_counter()
                try:
                    resp = await client.post("/intents", json=BODY)
                    ok = resp.status_code == 201
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return Result(name, latencies, errors, wall)


def scratch_database() -> tuple[str, str]:
    settings = load()
    base = settings.external_database_url or localdb.up(settings)[1]
    app_url = with_database(base, f"harness_bench_{os.getpid()}")
    dagster_url = with_database(base, f"harness_bench_{os.getpid()}_dagster")
    db.recreate_database(app_url)
    db.recreate_database(dagster_url)
    migrate.migrate(app_url)
    return app_url, dagster_url


def drop_database(url: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db.database_name(url)}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    bench_began = time.monotonic()
    app_url, dagster_url = scratch_database()
    bare_port, app_port, dagster_port, grpc_port = free_ports(4)
    env = {**os.environ, "APP_DATABASE_URL": app_url, "DAGSTER_DATABASE_URL": dagster_url, "PORT": str(app_port),
           "DAGSTER_PORT": str(dagster_port), "DAGSTER_GRPC_PORT": str(grpc_port)}
    env.pop("API_TOKEN", None)
    python = sys.executable
    plans = [
        ("bare FastAPI + uvicorn", [python, "-c", BARE_APP, str(bare_port)], bare_port, "/healthz"),
        ("intent-harness POST /intents", [python, "-m", "uvicorn", "--factory", "api.main:create_app",
                                          "--host", "127.0.0.1", "--port", str(app_port), "--log-level", "warning",
                                          "--no-access-log"], app_port, "/openapi.json"),
    ]
    results: list[Result] = []
    try:
        for name, argv, port, ready_path in plans:
            server = Server(name, argv, port, env)
            try:
                server.wait_ready(ready_path)
                results.append(asyncio.run(load_test(name, server.url, args.requests, args.concurrency,
                                                     args.warmup)))
            finally:
                server.stop()
        with psycopg.connect(app_url) as conn:
            rows = conn.execute("SELECT count(*) FROM app.intents").fetchone()[0]  # type: ignore[index]
    finally:
        drop_database(app_url)
        drop_database(dagster_url)

    print(f"machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()} "
          f"({platform.python_implementation()}), uvicorn 1 worker each, client: 1 asyncio process, httpx")
    print()
    print(f"`POST /intents`, {args.concurrency} concurrent keep-alive clients, {args.requests} requests "
          f"after {args.warmup} warm-up requests")
    print()
    print("| server | ok | errors | wall s | req/s | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rps = r.ok / r.wall_s if r.wall_s else float("nan")
        print(f"| {r.name} | {r.ok} | {r.errors} | {r.wall_s:.2f} | {rps:.0f} | {r.pct(50):.2f} | {r.pct(99):.2f} "
              f"| {max(r.latencies_ms, default=float('nan')):.2f} |")
    if len(results) == 2 and results[0].ok and results[1].ok:
        bare, real = results
        print()
        print(f"real / bare: throughput {real.ok / real.wall_s / (bare.ok / bare.wall_s):.2f}x, "
              f"p50 {real.pct(50) / bare.pct(50):.1f}x, p99 {real.pct(99) / bare.pct(99):.1f}x; "
              f"app.intents rows written: {rows} (expected {results[1].ok + args.warmup})")
    print(f"\nbench wall time: {time.monotonic() - bench_began:.1f}s")


if __name__ == "__main__":
    main()
