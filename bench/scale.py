"""Scale-out: the intent path over HTTP on the warm launcher and on Celery with 1 and 2 workers, in
one run on one machine.

    python -m bench.scale [--n 10] [--burst 20]

For each variant it boots the stack (its own data dir, embedded PostgreSQL and, for Celery, its
embedded Redis and WORKERS worker hosts of concurrency 1; ports 3360/4360/5360/7360), then:

- sequential: N demo intents one after the other, ``POST /intents/{id}/run`` → the RunView says
  ``succeeded`` (long-poll); p50/p90;
- burst: B runs submitted back to back; runs/s from the first submit to the last Dagster SUCCESS
  (watched in Dagster's run table every 0.1 s), and each run's submit → SUCCESS p50/p90;
- CPU-seconds per run of the burst, per component (its process tree, live or reaped children):
  the stack's parts, the warm pool or each worker host, PostgreSQL and Redis.

Replay-mode OC and the real bwrap sandbox, as ``bench:intent``. On 2 shared cores two Celery
workers cannot do much better than one: the table says where the CPU goes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import httpx
import psycopg

from bench.intent_latency import run_once
from bench.launch_latency import percentile, tree_cpu_s
from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import db, localdb
from scripts import broker, stack

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
VARIANTS = (("warm", "warm", 0), ("celery, 1 worker", "celery", 1), ("celery, 2 workers", "celery", 2))


def cpu_by_component(settings: Settings) -> dict[str, float]:
    roots = {c.name: pid for c in stack.components(settings) if (pid := stack.read_pid(settings, c.name))}
    if settings.embedded and (info := localdb.running(settings)):
        roots["postgres"] = info[0]
    if (pid := broker.running(settings)) is not None:
        roots["broker"] = pid
    return tree_cpu_s(roots)


def _burst(api: httpx.Client, intent_id: str, burst: int, dagster_url: str) -> tuple[list[float], float]:
    """Submit ``burst`` runs back to back, then watch Dagster's run table (one query per 0.1 s, not
    ``burst`` long-polls holding API connections) for each app run's SUCCESS."""
    t0 = time.perf_counter()
    submitted = {}
    for _ in range(burst):
        submitted[api.post(f"/intents/{intent_id}/run", json={}).json()["runId"]] = time.perf_counter()
    done: dict[str, float] = {}
    deadline = time.monotonic() + 600
    with psycopg.connect(dagster_url, autocommit=True) as conn:
        while len(done) < burst:
            if time.monotonic() > deadline:
                raise SystemExit(f"burst: {burst - len(done)} run(s) did not succeed within 600 s")
            rows = conn.execute(
                "SELECT DISTINCT t.value FROM runs r JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'app/run_id' "
                "WHERE t.value = ANY(%s) AND r.status = 'SUCCESS'", ([k for k in submitted if k not in done],)).fetchall()
            now = time.perf_counter()
            for (run_id,) in rows:
                done[run_id] = now
            time.sleep(0.1)
    return [done[k] - submitted[k] for k in submitted], max(done.values()) - t0


def measure(launcher: str, workers: int, n: int, burst: int) -> dict:
    os.environ["HARNESS_RUN_LAUNCHER"] = launcher
    os.environ["WORKERS"] = str(workers)
    settings = load()
    try:
        stack.up(settings)
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=120) as api:
            intent_id = api.post("/intents", json=DEMO).json()["intentId"]
            run_once(api, intent_id)  # warms caches; not counted
            seq = [run_once(api, intent_id) for _ in range(n)]
            cpu0 = cpu_by_component(settings)
            lat, wall = _burst(api, intent_id, burst, db.dagster_url(settings))
            cpu1 = cpu_by_component(settings)
        cpu = {k: (cpu1[k] - cpu0.get(k, 0.0)) / burst for k in cpu1}
        return {"seq": seq, "burst": lat, "wall": wall, "cpu": cpu}
    finally:
        stack.down(settings, keep_db=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.scale")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("PORT", "3360")
    os.environ.setdefault("HARNESS_DATA_DIR", str(REPO_ROOT / ".data" / "bench-scale"))
    for var in ("BROKER_URL", "HARNESS_WORKER_LEASE"):
        os.environ.pop(var, None)
    results = {}
    try:
        for label, launcher, workers in VARIANTS:
            results[label] = measure(launcher, workers, args.n, args.burst)
    finally:
        if load().embedded:
            localdb.down(load())
    print(f"\nmachine: {os.cpu_count()} cores, {platform.release()}, Python {platform.python_version()}; "
          f"{args.n} sequential + a burst of {args.burst} demo-intent runs per variant (replay OC, real bwrap "
          "sandbox); Celery workers have concurrency 1 each, the warm pool its cap "
          f"({load().pool_max_running})\n")
    print("| variant | sequential p50 s | sequential p90 s | burst runs/s | burst p50 s | burst p90 s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {statistics.median(r['seq']):.3f} | {percentile(r['seq'], 0.9):.3f} | "
              f"{args.burst / r['wall']:.2f} | {statistics.median(r['burst']):.3f} | {percentile(r['burst'], 0.9):.3f} |")
    names = sorted({k for r in results.values() for k in r["cpu"]},
                   key=lambda k: (k.startswith("worker"), k))
    print("\nCPU-seconds per run of the burst, per component:\n")
    print("| variant | " + " | ".join(names) + " | total |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label, r in results.items():
        cells = [f"{r['cpu'][k]:.3f}" if k in r["cpu"] else "-" for k in names]
        print(f"| {label} | " + " | ".join(cells) + f" | {sum(r['cpu'].values()):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
