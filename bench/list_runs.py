"""GET /runs?status=…&limit=50 with 100,000 runs in the table: p50 / p90 per query shape, one run.

Seeds a scratch database (1,000 intents, 100,000 runs spread over 30 days: 70 % succeeded, 15 %
failed, 5 % each canceled, running and queued) with one INSERT … SELECT, then asks the API in a
process of its own, one sequential keep-alive client, for the first page, a page deep in the
table (its cursor taken from the answer, as a client would), and the filters combined; prints the
table with the machine noted and the plan PostgreSQL chose for the first page.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from api import query
from bench.api_process import api
from bench.api_throughput import drop_database, scratch_database
from pipelines.store import listing

RUNS, INTENTS = 100_000, 1_000
TARGET_MS = 20.0

SEED = """
INSERT INTO app.intents (intent_id, goal, inputs, constraints, connectors, request_sha256, created_at)
SELECT 'int_' || md5('intent' || i), 'bench', '{}', '{}', '[]', 'x', now() - interval '31 days'
FROM generate_series(1, INTENTS) i;
INSERT INTO app.runs (run_id, intent_id, trace_id, request_sha256, created_at, status_at, status, attempts)
SELECT 'run_' || md5('run' || i), 'int_' || md5('intent' || (i % INTENTS + 1)), 't' || (i % 500), 'x', at, at,
       CASE WHEN i % 20 < 14 THEN 'succeeded' WHEN i % 20 < 17 THEN 'failed' WHEN i % 20 = 17 THEN 'canceled'
            WHEN i % 20 = 18 THEN 'running' ELSE 'queued' END, 1
FROM generate_series(1, RUNS) i, LATERAL (SELECT now() - (i * interval '26 seconds') AS at) t;
ANALYZE app.intents; ANALYZE app.runs;
"""


def timed(client: httpx.Client, params: dict[str, str | int], n: int) -> tuple[list[float], dict]:
    samples, body = [], {}
    for _ in range(n):
        began = time.perf_counter()
        resp = client.get("/runs", params=params)
        samples.append((time.perf_counter() - began) * 1000)
        resp.raise_for_status()
        body = resp.json()
    return samples, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    app_url, dagster_url = scratch_database()
    try:
        with psycopg.connect(app_url, autocommit=True) as conn:
            # Constants, not input: several statements in one simple query.
            conn.execute(SEED.replace("RUNS", str(RUNS)).replace("INTENTS", str(INTENTS)).encode())
            count = conn.execute("SELECT count(*) FROM app.runs").fetchone()[0]  # type: ignore[index]
            plan = [r[0] for r in conn.execute(
                "EXPLAIN ANALYZE SELECT run_id FROM app.runs WHERE status = 'succeeded' "
                "ORDER BY created_at DESC, run_id DESC LIMIT 51").fetchall()]
            deep = listing.runs(conn, listing.RunFilter(status="succeeded"), after=None, limit=50_000)[-1]
        rows: list[tuple[str, list[float]]] = []
        with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp, \
                api(app_url, dagster_url, Path(tmp) / "api.log") as url, \
                httpx.Client(base_url=url, timeout=30) as client:
            timed(client, {"status": "succeeded", "limit": 50}, 30)  # warm the pools and caches
            first, body = timed(client, {"status": "succeeded", "limit": 50}, args.requests)
            assert len(body["runs"]) == 50 and body["nextCursor"], body
            rows.append(("`?status=succeeded&limit=50` (first page)", first))
            cursor = query.encode(deep.created_at, deep.run_id)
            rows.append(("same, `&cursor=` 50,000 rows deep", timed(
                client, {"status": "succeeded", "limit": 50, "cursor": cursor}, args.requests)[0]))
            rows.append(("`?limit=50` (no filter)", timed(client, {"limit": 50}, args.requests)[0]))
            rows.append(("`?status=failed&trace_id=t15&limit=50` (200 such runs)", timed(
                client, {"status": "failed", "trace_id": "t15", "limit": 50}, args.requests)[0]))
            rows.append(("`?limit=200`", timed(client, {"limit": 200}, args.requests)[0]))
    finally:
        drop_database(app_url)
        drop_database(dagster_url)

    print(f"machine: {os.cpu_count()} CPUs (shared with other sessions), Linux {platform.release()}, "
          f"Python {platform.python_version()}; API: uvicorn, 1 worker, own process; client: 1 sequential "
          f"keep-alive httpx client; {count:,} runs, {INTENTS:,} intents")
    print()
    print("| request | n | p50 ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in rows:
        deciles = statistics.quantiles(samples, n=10)
        print(f"| {name} | {len(samples)} | {statistics.median(samples):.1f} | {deciles[8]:.1f} | {max(samples):.1f} |")
    print()
    print("first page's plan:", *plan, sep="\n    ")
    p50 = statistics.median(rows[0][1])
    print(f"\ntarget: first page p50 <= {TARGET_MS:.0f} ms: {'met' if p50 <= TARGET_MS else 'NOT met'} ({p50:.1f} ms)")


if __name__ == "__main__":
    main()
