"""The API through PostgreSQL outages: how long a request takes to get its 503 while the server is
down, and how long after the server accepts connections again each route answers again.

A private embedded PostgreSQL in a temporary data dir (stopped and started by PID through
``pipelines.store.localdb``; the checkout's own server is not touched) and the API under uvicorn in
its own process, Dagster unreachable (not needed by these routes). One client per route asks in a
loop, one request at a time. Every 201 is then looked up: none may lack its row.

    .venv/bin/python -m bench.db_outage [--cycles 3] [--outage-s 6]

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.api_process import api
from pipelines.settings import Settings, database_name, load, with_database
from pipelines.store import db, localdb, migrate

BODY = {"goal": "survive an outage", "inputs": {}, "constraints": {}, "connectors": []}
ROUTES = {"POST /intents": ("POST", "/intents"), "GET /runs/{id}": ("GET", "/runs/run_" + "0" * 32),
          "GET /healthz": ("GET", "/healthz")}
CLIENT_TIMEOUT_S = 60.0  # longer than any old park (30 s): a hang is measured, not cut
RESUME_BUDGET_S = 60.0


@dataclass
class RouteLog:
    outage_ms: list[float] = field(default_factory=list)  # latency of each request asked while PostgreSQL was down
    outage_statuses: set[int | str] = field(default_factory=set)
    resume_s: list[float] = field(default_factory=list)  # per cycle: first non-5xx after PostgreSQL accepted


def ask(client: httpx.Client, route: str) -> tuple[int | str, float, httpx.Response | None]:
    method, path = ROUTES[route]
    began = time.perf_counter()
    try:
        resp = client.request(method, path, json=BODY if method == "POST" else None)
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - began, None
    return resp.status_code, time.perf_counter() - began, resp


def accepting(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=6.0)
    args = parser.parse_args()

    began = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    os.environ["HARNESS_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    settings = load()
    app_url = localdb.up(settings)[1]
    logs = {route: RouteLog() for route in ROUTES}
    accepted: list[str] = []
    try:
        dagster_url = with_database(app_url, database_name(app_url) + "_dagster")
        db.ensure_database(app_url)
        db.ensure_database(dagster_url)  # empty: an unknown run's 404 and /healthz read no Dagster table
        migrate.migrate(app_url)
        with api(app_url, dagster_url, data_dir / "api.log") as url:
            for _ in range(args.cycles):
                cycle(url, settings, app_url, args.outage_s, logs, accepted)
        with psycopg.connect(app_url) as conn:
            stored = conn.execute("SELECT count(*) FROM app.intents WHERE intent_id = ANY(%s)",
                                  (accepted,)).fetchone()[0]  # type: ignore[index]
    finally:
        localdb.down(settings)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"machine: {os.cpu_count()} CPUs (shared with other sessions), Linux {platform.release()}, "
          f"Python {platform.python_version()}; API: uvicorn, 1 worker; PostgreSQL: embedded, private data dir")
    print()
    print(f"{args.cycles} outages of {args.outage_s:.0f} s (PostgreSQL stopped by PID, fast shutdown); "
          "one client per route asking in a loop")
    print()
    print("| route | requests asked while down | their statuses | p50 ms | max ms "
          "| first non-5xx after PostgreSQL accepted again, per cycle (s) |")
    print("|---|---:|---|---:|---:|---|")
    for route, log in logs.items():
        lat, nan = log.outage_ms, float("nan")
        statuses = ", ".join(map(str, sorted(log.outage_statuses, key=str)))
        resumed = ", ".join(f"{s:.2f}" for s in log.resume_s)
        print(f"| {route} | {len(lat)} | {statuses} | {statistics.median(lat) if lat else nan:.0f} "
              f"| {max(lat, default=nan):.0f} | {resumed} |")
    print()
    print(f"201s answered: {len(accepted)}; of them without a row: {len(accepted) - stored}")
    print(f"\nbench wall time: {time.monotonic() - began:.1f}s")


def cycle(url: str, settings: Settings, app_url: str, outage_s: float, logs: dict[str, RouteLog],
          accepted: list[str]) -> None:
    """One outage: every route asked in a loop while PostgreSQL is down, then until it answers again."""
    down, restarting = threading.Event(), threading.Event()
    accepting_at: list[float] = []  # when PostgreSQL accepted connections again

    def asker(route: str) -> None:
        log = logs[route]
        with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
            down.wait()
            while not restarting.is_set():  # asked while PostgreSQL is down, however late it answers
                status, took, resp = ask(client, route)
                log.outage_ms.append(took * 1000)
                log.outage_statuses.add(status)
                _keep(resp, accepted)
            while not accepting_at:
                time.sleep(0.01)
            deadline = time.monotonic() + RESUME_BUDGET_S
            while time.monotonic() < deadline:
                status, _, resp = ask(client, route)
                _keep(resp, accepted)
                if isinstance(status, int) and status < 500:
                    log.resume_s.append(time.monotonic() - accepting_at[0])
                    return
                time.sleep(0.02)
            log.resume_s.append(float("nan"))

    threads = [threading.Thread(target=asker, args=(r,), daemon=True) for r in ROUTES]
    for t in threads:
        t.start()
    localdb.down(settings)
    down.set()
    time.sleep(outage_s)
    restarting.set()
    localdb.up(settings)
    while not accepting(app_url):
        time.sleep(0.01)
    accepting_at.append(time.monotonic())
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + RESUME_BUDGET_S)


def _keep(resp: httpx.Response | None, accepted: list[str]) -> None:
    if resp is not None and resp.status_code == 201:
        accepted.append(resp.json()["intentId"])


if __name__ == "__main__":
    main()
