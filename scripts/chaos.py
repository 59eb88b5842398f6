"""Chaos proof, DBOS chaos-monkey style: intents over HTTP while stack parts are SIGKILLed.

    N=150 RATE=2 python -m scripts.chaos        (mise run -f chaos)

1. boot its own stack (own PORT, default 3900, and data dir ``.data/chaos-<port>``);
2. N clients, started at a steady RATE per second, each create an intent and run it over HTTP,
   retrying every request with its own ``Idempotency-Key`` until it is answered;
3. meanwhile a chaos loop SIGKILLs a random part every KILL_EVERY seconds (pool, a run worker,
   code server, daemon, webserver, API; with HARNESS_RUN_LAUNCHER=celery, which runs 2 worker
   hosts, also a whole worker host or the Redis broker, not the pool) and brings it back with
   ``stack up``, and restarts
   PostgreSQL every PG_EVERY seconds (immediate shutdown, like a crash);
4. then, chaos stopped, it waits with a deadline and checks from rows: every accepted run
   succeeded; one intent and one app run per idempotency key; one succeeded step row per
   (run, step) and no duplicate artifact; exactly one root Dagster run per app run; nothing left
   queued or started. It prints a table and exits non-zero when an invariant broke.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import psycopg

from pipelines.orchestration import dagster_runs, lifecycle
from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import checkpoint, db, repo, run_workers
from scripts import stack
from scripts.crashdemo_proof import restart_postgres
from scripts.polling import Timeout, poll

TARGETS = ("pool", "worker", "codeserver", "daemon", "webserver", "api", "worker-host", "broker")
CELERY_TARGETS = ("worker-host", "broker")  # HARNESS_RUN_LAUNCHER=celery (WORKERS=2 by default here)


def targets(settings: Settings) -> list[str]:
    return [t for t in TARGETS if (t != "pool" or settings.run_launcher == "warm")
            and (t not in CELERY_TARGETS or settings.run_launcher == "celery")]
DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
STEPS = ("oc", "sandbox", "persist")


@dataclass
class Tally:
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    postgres_restarts: int = 0
    client_retries: int = 0
    accepted: dict[int, str] = field(default_factory=dict)  # client index -> app run id
    submitted_at: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(client: httpx.Client, path: str, body: dict, key: str, tally: Tally, stop_at: float) -> dict:
    """POST until answered 2xx, always with the same Idempotency-Key (what a careful client does)."""
    while True:
        try:
            resp = client.post(path, json=body, headers={"Idempotency-Key": key})
            if resp.status_code in (200, 201, 202):
                return dict(resp.json())
            if resp.status_code < 500:
                raise AssertionError(f"POST {path} answered {resp.status_code}: {resp.text}")
        except httpx.HTTPError:
            pass
        if time.monotonic() > stop_at:
            raise Timeout(f"POST {path} (key {key}) never answered")
        with tally.lock:
            tally.client_retries += 1
        time.sleep(0.5 + random.random())


def submit(settings: Settings, i: int, tally: Tally, stop_at: float) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=15) as client:
        intent = _post(client, "/intents", DEMO, f"chaos-intent-{i}", tally, stop_at)["intentId"]
        run = _post(client, f"/intents/{intent}/run", {"traceId": f"chaos-{i}"}, f"chaos-run-{i}", tally,
                    stop_at)["runId"]
    with tally.lock:
        tally.accepted[i] = run
        tally.submitted_at.setdefault(run, time.time())


def _kill_a_worker(settings: Settings, within_s: float = 3.0) -> bool:
    """SIGKILL a live run worker, waiting up to ``within_s`` for one (runs take well under a second)."""
    deadline = time.monotonic() + within_s
    with psycopg.connect(db.app_url(settings), connect_timeout=3, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT pid, pid_start_ticks FROM app.run_workers "
                                "WHERE registered_at > now() - interval '1 minute'").fetchall()
            live = [(pid, ticks) for pid, ticks in rows if run_workers.is_alive(pid, ticks)]
            if live:
                os.kill(random.choice(live)[0], signal.SIGKILL)
                return True
            time.sleep(0.05)
    return False


def chaos(settings: Settings, tally: Tally, done: threading.Event, kill_every: float, pg_every: float) -> None:
    next_pg = time.monotonic() + pg_every
    while not done.wait(random.uniform(0.5, 1.5) * kill_every):
        try:
            if settings.embedded and time.monotonic() > next_pg:
                restart_postgres(settings)
                tally.postgres_restarts += 1
                next_pg = time.monotonic() + pg_every
            else:
                target = random.choice(targets(settings))
                if target == "worker":
                    if not _kill_a_worker(settings):
                        continue
                elif target == "worker-host":  # a whole Celery worker host: a lost machine
                    stack.kill(settings, [random.choice(stack.worker_names(settings))], signal.SIGKILL)
                else:
                    stack.kill(settings, [target], signal.SIGKILL)
                tally.kills[target] += 1
            stack.up(settings)
        except Exception as exc:  # noqa: BLE001 — chaos goes on; the invariants decide at the end
            print(f"chaos: {type(exc).__name__}: {exc}", flush=True)


@dataclass(frozen=True)
class Verdict:
    problems: list[str]
    roots: collections.Counter[int]
    group_sizes: collections.Counter[int]
    settle_s: list[float]


def check(settings: Settings, tally: Tally, n: int) -> Verdict:
    problems: list[str] = []
    runs = list(tally.accepted.values())
    if len(runs) != n:
        problems.append(f"{n - len(runs)} of {n} submissions were never accepted")
    roots: collections.Counter[int] = collections.Counter()
    sizes: collections.Counter[int] = collections.Counter()
    settle: list[float] = []
    with psycopg.connect(db.app_url(settings)) as app, psycopg.connect(db.dagster_url(settings)) as dag:
        keys = app.execute("SELECT count(*), count(DISTINCT idempotency_key) FROM app.runs "
                           "WHERE idempotency_key LIKE 'chaos-run-%%'").fetchone()
        if keys is None or keys[0] != len(runs) or keys[1] != len(runs):
            problems.append(f"app runs for chaos keys: {keys}, expected {len(runs)} distinct")
        for run_id in runs:
            run = repo.get_run(app, run_id)
            assert run is not None
            group = dagster_runs.run_group(dag, run_id)
            status = lifecycle.status(run, group)
            roots[sum(1 for g in group if g.parent_run_id is None)] += 1
            sizes[len(group)] += 1
            if status != "succeeded":
                problems.append(f"{run_id} is {status}")
            steps = checkpoint.steps(app, run_id)
            if sorted(steps) != sorted(STEPS) or any(s["status"] != "succeeded" for s in steps.values()):
                problems.append(f"{run_id} steps {({k: v['status'] for k, v in steps.items()})}")
            names = [r["name"] for r in repo.artifacts(app, run_id)]
            if len(names) != len(set(names)) or "result.json" not in names:
                problems.append(f"{run_id} artifacts {names}")
            if group and group[-1].status == "SUCCESS":
                ended = dag.execute("SELECT end_time FROM runs WHERE run_id = %s", (group[-1].run_id,)).fetchone()
                if ended and ended[0]:
                    settle.append(float(ended[0]) - tally.submitted_at[run_id])
        stuck = dag.execute("SELECT count(*) FROM runs WHERE status IN ('QUEUED', 'NOT_STARTED', 'STARTING', "
                            "'STARTED', 'CANCELING')").fetchone()
        if stuck and stuck[0]:
            problems.append(f"{stuck[0]} Dagster run(s) left queued or started")
    if set(roots) - {1}:
        problems.append(f"app runs by number of root Dagster runs: {dict(roots)}")
    return Verdict(problems, roots, sizes, settle)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=int(os.environ.get("N", "150")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("RATE", "2")), help="intents per second")
    parser.add_argument("--kill-every", type=float, default=float(os.environ.get("KILL_EVERY", "5")))
    parser.add_argument("--pg-every", type=float, default=float(os.environ.get("PG_EVERY", "60")))
    parser.add_argument("--settle-deadline", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "0")))
    args = parser.parse_args()
    random.seed(args.seed)
    if os.environ.get("HARNESS_RUN_LAUNCHER") == "celery":
        os.environ.setdefault("WORKERS", "2")
    os.environ.setdefault("PORT", "3900")
    os.environ.setdefault("HARNESS_DATA_DIR", str(REPO_ROOT / ".data" / f"chaos-{os.environ['PORT']}"))
    settings = load()
    # Stopped at the end, pass or fail: a stack left up would run the next chaos run on this run's
    # code (its rows stay under the data dir; `mise run db:up` with the same PORT to read them).
    try:
        return _run(settings, args)
    finally:
        stack.down(settings)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    stack.up(settings)
    with psycopg.connect(db.app_url(settings), autocommit=True) as conn:  # a clean slate for the keys
        conn.execute("DELETE FROM app.runs WHERE idempotency_key LIKE 'chaos-%%'")
        conn.execute("DELETE FROM app.intents WHERE idempotency_key LIKE 'chaos-%%' "
                     "AND intent_id NOT IN (SELECT intent_id FROM app.runs)")

    tally, done = Tally(), threading.Event()
    monkey = threading.Thread(target=chaos, args=(settings, tally, done, args.kill_every, args.pg_every),
                              name="chaos", daemon=True)
    started = time.monotonic()
    monkey.start()
    clients = []
    stop_at = started + args.n / args.rate + args.settle_deadline
    for i in range(args.n):
        delay = started + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=submit, args=(settings, i, tally, stop_at), name=f"client-{i}", daemon=True)
        t.start()
        clients.append(t)
    for t in clients:
        t.join(max(0.0, stop_at - time.monotonic()))
    done.set()
    monkey.join()
    stack.up(settings)  # everything back before judging
    print(f"submitted {len(tally.accepted)}/{args.n} in {time.monotonic() - started:.0f}s; chaos stopped", flush=True)

    def settled() -> bool:
        with psycopg.connect(db.app_url(settings)) as app, psycopg.connect(db.dagster_url(settings)) as dag:
            for run_id in tally.accepted.values():
                run = repo.get_run(app, run_id)
                if run is None or lifecycle.status(run, dagster_runs.run_group(dag, run_id)) not in lifecycle.FINAL:
                    return False
        return True

    try:
        poll("every accepted run to settle", settled, args.settle_deadline, 1.0)
    except Timeout as exc:
        print(exc)
    verdict = check(settings, tally, args.n)

    print()
    print("| kills by target | count |")
    print("|---|---|")
    for target in targets(settings):
        print(f"| {target} | {tally.kills[target]} |")
    print(f"| PostgreSQL restarts | {tally.postgres_restarts} |")
    print(f"| client retries (same key) | {tally.client_retries} |")
    print()
    print("| Dagster runs per app run | app runs |")
    print("|---|---|")
    for size, count in sorted(verdict.group_sizes.items()):
        print(f"| {size} | {count} |")
    print()
    print(f"root Dagster runs per app run: {dict(verdict.roots)}")
    if verdict.settle_s:
        print(f"submit -> succeeded: p50 {statistics.median(verdict.settle_s):.1f}s, "
              f"slowest {max(verdict.settle_s):.1f}s")
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; N={args.n}, rate {args.rate}/s, "
          f"kill every ~{args.kill_every}s, PostgreSQL every {args.pg_every}s, seed {args.seed}")
    if verdict.problems:
        print(f"\nINVARIANTS BROKEN ({len(verdict.problems)}):")
        for p in verdict.problems[:50]:
            print(f"  - {p}")
        return 1
    print("\nevery invariant held: all accepted runs succeeded, one app run per key, one root Dagster run "
          "per app run, one succeeded step row per (run, step), no duplicate artifact, nothing left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
