"""Submit -> succeeded for intents through the HTTP API, per launcher, beside in-process execution.

    python -m bench.intent_latency [--n 20]

One run, same machine: boots the stack (own data dir and embedded PostgreSQL, ports 3350/4350/5350)
with the warm launcher, then again with tracing on (every process exporting its spans over
OTLP/HTTP to the in-tree receiver, scripts/otlp_receiver.py), then with Dagster's stock launcher,
and times N sequential replay-mode runs of the demo intent from `POST /intents/{id}/run` to the
RunView saying `succeeded` (long-poll). Tracing's cost is the traced p50 over the untraced one;
the two warm rows are measured in alternating blocks (`--blocks`, default 4: off, on, off, on, …,
a fresh stack each), so the load of a shared machine drifting during the run falls on both alike.
The reference executes the same `intent_job` N times in process (`execute_in_process` against the
same Postgres run storage, with dagster-postgres's default unpooled connections): no launcher,
no HTTP, but every storage write opens a connection, which the warm pool's workers do not.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import httpx
from dagster import instance_for_test

from pipelines.definitions import defs
from pipelines.jobs.intent import run_config as intent_run_config
from pipelines.resources.app_db import AppDatabase
from pipelines.settings import REPO_ROOT, load, sqlalchemy_psycopg2
from pipelines.store import db, localdb
from pipelines.store.repo import new_id
from scripts import stack
from scripts.otlp_receiver import Receiver

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
             "OTEL_TRACES_EXPORTER")


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_once(api: httpx.Client, intent_id: str) -> float:
    """Seconds from POST /intents/{id}/run to its RunView saying succeeded (long-polled)."""
    t0 = time.perf_counter()
    run_id = api.post(f"/intents/{intent_id}/run", json={}).json()["runId"]
    view = api.get(f"/runs/{run_id}").json()
    while view["status"] not in ("succeeded", "failed", "canceled"):
        view = api.get(f"/runs/{run_id}", params={"wait": 25}).json()
    if view["status"] != "succeeded":
        raise SystemExit(f"run {run_id} ended {view['status']}")
    return time.perf_counter() - t0


def over_http(launcher: str, n: int, traced: Receiver | None = None) -> list[float]:
    os.environ["HARNESS_RUN_LAUNCHER"] = launcher
    for name in OTEL_VARS:
        os.environ.pop(name, None)
    if traced is not None:
        os.environ.update(traced.env())
    settings = load()
    stack.up(settings)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=60) as api:
            intent_id = api.post("/intents", json=DEMO).json()["intentId"]
            samples = []
            for _ in range(n + 1):  # the first run warms caches and is not counted
                samples.append(run_once(api, intent_id))
        return samples[1:]
    finally:
        stack.down(settings, keep_db=True)
        for name in OTEL_VARS:
            os.environ.pop(name, None)


def in_process(n: int) -> list[float]:
    settings = load()
    app_url = db.app_url(settings)
    storage = {"postgres": {"postgres_url": sqlalchemy_psycopg2(db.dagster_url(settings))}}
    job = defs.resolve_job_def("intent_job")
    samples = []
    with instance_for_test(overrides={"storage": storage}) as instance:
        import psycopg

        from pipelines.store import repo

        for _ in range(n + 1):
            with psycopg.connect(app_url, autocommit=True) as conn, conn.transaction():
                intent_id, _ = repo.create_intent(conn, intent_id=new_id("int"), body=DEMO, idempotency_key=None)
                run_id, _ = repo.create_run(conn, run_id=new_id("run"), intent_id=intent_id, trace_id=None,
                                            options={"oc": {"mode": "replay", "seed": 0}}, idempotency_key=None)
            t0 = time.perf_counter()
            result = job.execute_in_process(run_config=intent_run_config(run_id), instance=instance,
                                            tags={"app/run_id": run_id},
                                            resources={"app_db": AppDatabase(url=app_url)})
            assert result.success
            samples.append(time.perf_counter() - t0)
    return samples[1:]


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.intent_latency")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=4, help="alternating off/on blocks of the warm rows")
    args = parser.parse_args()
    os.environ.setdefault("PORT", "3350")
    os.environ.setdefault("HARNESS_DATA_DIR", str(REPO_ROOT / ".data" / "bench-intent"))
    receiver = Receiver()
    try:
        off: list[float] = []
        on: list[float] = []
        for block in range(args.blocks):
            size = args.n // args.blocks + (1 if block < args.n % args.blocks else 0)
            off += over_http("warm", size)
            on += over_http("warm", size, receiver)
        rows = [("HTTP API, warm launcher, tracing off", off),
                ("HTTP API, warm launcher, tracing on (OTLP/HTTP to the in-tree receiver)", on)]
        rows.append(("HTTP API, stock launcher, tracing off", over_http("stock", args.n)))
        os.environ["APP_DATABASE_URL"] = db.app_url(load())
        rows.append(("in process, execute_in_process on unpooled storage", in_process(args.n)))
    finally:
        receiver.close()
        if load().embedded:
            localdb.down(load())  # the bench's own server: leave nothing running
    print(f"\nmachine: {os.cpu_count()} cores, {platform.release()}, Python {platform.python_version()}; "
          f"{args.n} sequential demo-intent runs each (replay OC, real bwrap sandbox)\n")
    print("| path | p50 s | p90 s | min s | max s |")
    print("|---|---:|---:|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {statistics.median(s):.3f} | {_pct(s, 90):.3f} | {min(s):.3f} | {max(s):.3f} |")
    p50_off, p50_on = statistics.median(rows[0][1]), statistics.median(rows[1][1])
    spans = receiver.snapshot()
    print(f"\ntracing on vs off, warm launcher ({args.blocks} alternating blocks): p50 {100 * (p50_on - p50_off) / p50_off:+.1f} % "
          f"({len(spans)} spans received in {len({s.trace_id for s in spans})} traces, {len(receiver.errors)} errors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
