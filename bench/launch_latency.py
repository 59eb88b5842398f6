"""Launch latency and throughput: the stock launcher vs the warm pool, one run, same machine.

    python -m bench.launch_latency [--seq 20] [--burst 40] [--idle 20]

Boots two private stacks one after the other (never both at once: 2 cores), each from a code
snapshot on its own databases and ports, and measures on each:

- submit -> SUCCESS for ``--seq`` sequential ``hello_job`` runs (GraphQL ``launchRun``, SUCCESS
  seen in run storage), p50/p90;
- sustained runs/s with ``--burst`` runs submitted at once, and the highest number of runs seen
  executing at once beside the instance's cap (none for the stock launcher without a queue, the
  pool's ``max_running`` for ours);
- CPU-seconds per run and idle CPU of the whole stack (code server, daemon, webserver, warm pool,
  HTTP API, their reaped children and its own PostgreSQL), so other work on the machine does not
  count. The bench polls run status with one query on one connection: polling with a new
  connection per run per 50 ms (as this bench first did) was half of Postgres's CPU in a burst.

``stock`` is Dagster's DefaultRunLauncher behind the DefaultRunCoordinator: no queue, no cap (not
the stack's HARNESS_RUN_LAUNCHER=stock, which queues); ``warm`` is the WarmPoolRunLauncher behind
the same coordinator, cap in the pool. Each row's label and cap come from the instance it ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster
import psycopg
import yaml

from pipelines.launcher.protocol import request
from pipelines.orchestration import dagster_runs
from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.settings import database_name, load, with_database
from pipelines.store import db, localdb, migrate
from scripts.trial_stack import (
    DEFAULT_COORDINATOR,
    DEFAULT_LAUNCHER,
    WARM_LAUNCHER,
    TrialStack,
    instance_yaml,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass(frozen=True)
class Variant:
    """One launcher set-up the bench boots. Its table rows are labelled from the instance the trial
    stack writes for it, so a label cannot claim a queue or a cap that did not run."""

    name: str  # --only's choice
    launcher: dict[str, Any]
    coordinator: dict[str, Any]
    port: int

    def _instance(self) -> dict[str, Any]:
        instance: dict[str, Any] = yaml.safe_load(instance_yaml(self.launcher, self.coordinator))
        return instance

    def label(self) -> str:
        instance = self._instance()
        return f"{self.name} ({instance['run_coordinator']['class']} + {instance['run_launcher']['class']})"

    def cap(self, pool_cap: int) -> int | None:
        """Runs allowed to execute at once: the pool's cap, a queue's, or None (nothing caps them)."""
        instance = self._instance()
        if instance["run_launcher"]["class"] == WARM_LAUNCHER["class"]:
            return pool_cap
        if instance["run_coordinator"]["class"] == "QueuedRunCoordinator":
            return int(instance["run_coordinator"]["config"]["max_concurrent_runs"])
        return None


VARIANTS = (Variant("stock", DEFAULT_LAUNCHER, DEFAULT_COORDINATOR, 3250),
            Variant("warm", WARM_LAUNCHER, DEFAULT_COORDINATOR, 3260))


def measure_sequential(submit: Callable[[], str], is_done: Callable[[str], bool], n: int,
                       poll_s: float = 0.01) -> list[float]:
    """Seconds from ``submit()`` to ``is_done(run)`` for ``n`` runs one after the other.

    Generic on purpose: the HTTP-intent bench passes a submit that POSTs to the API and an
    ``is_done`` that reads the run's final state."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        run = submit()
        while not is_done(run):
            time.sleep(poll_s)
        times.append(time.monotonic() - t0)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


COMPONENTS = ("codeserver", "daemon", "webserver", "pool", "api")


def stack_cpu_s(trial: TrialStack, postmaster: int | None) -> dict[str, float]:
    """CPU-seconds per component of the stack (its processes and their children, live or reaped)
    and of its Postgres."""
    roots = {name: pid for name in COMPONENTS if (pid := trial.pid(name))}
    if postmaster:
        roots["postgres"] = postmaster
    return tree_cpu_s(roots)


def tree_cpu_s(roots: dict[str, int]) -> dict[str, float]:
    """CPU-seconds per named process tree (each root and its descendants, live or reaped)."""
    per: dict[str, float] = {}
    seen: set[int] = set()
    for name, root in roots.items():
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            per[name] = per.get(name, 0.0) + _proc_cpu_s(pid)
            todo.extend(_children(pid))
    return per


def _cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def _sessions(conn: psycopg.Connection, trial: TrialStack) -> int:
    """New Postgres sessions so far on the stack's two databases (``pg_stat_database``, PG ≥ 14):
    each costs the server a backend fork, which is why the stack pools its connections."""
    row = conn.execute("SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname = ANY(%s)",
                       ([database_name(trial.app_url), database_name(trial.dagster_url)],)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Result:
    name: str
    seq: list[float]
    burst_n: int
    burst_s: float
    max_concurrent: int
    cap: int | None
    cpu_per_run_s: float
    idle_pct: float
    failed: int
    sessions_per_run: float
    idle_pct_by_component: dict[str, float]
    idle_sessions_per_s: float


def _executing(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM runs WHERE status = 'STARTED'").fetchone()
    return int(row[0]) if row else 0


def _unfinished(conn: psycopg.Connection, run_ids: list[str]) -> int:
    """One query on one connection: the bench's own polling must not load the stack's Postgres."""
    row = conn.execute("SELECT count(*) FROM runs WHERE run_id = ANY(%s) AND status <> ALL(%s)",
                       (run_ids, list(TERMINAL))).fetchone()
    return int(row[0]) if row else 0


def bench_stack(trial: TrialStack, name: str, cap: int | None, seq_n: int, burst_n: int, idle_s: float,
                postmaster: int | None) -> Result:
    with psycopg.connect(trial.dagster_url, autocommit=True) as watch:  # one connection for all polling
        return _bench_stack(trial, watch, name, cap, seq_n, burst_n, idle_s, postmaster)


def _bench_stack(trial: TrialStack, watch: psycopg.Connection, name: str, cap: int | None, seq_n: int, burst_n: int,
                 idle_s: float, postmaster: int | None) -> Result:
    client = DagsterClient(trial.settings.dagster_ui_url, timeout_s=60)
    launch = lambda: client.launch("hello_job", {}, {})  # noqa: E731
    finished = lambda r: dagster_runs.status(watch, r) in TERMINAL  # noqa: E731
    measure_sequential(launch, finished, 3)  # warm-up
    seq = measure_sequential(launch, finished, seq_n)

    run_ids: list[str] = []
    lock = threading.Lock()

    def submit(k: int) -> None:
        own = DagsterClient(trial.settings.dagster_ui_url, timeout_s=120)  # not thread-safe: one each
        for _ in range(k):
            rid = own.launch("hello_job", {}, {})
            with lock:
                run_ids.append(rid)

    cpu0, sessions0 = stack_cpu_s(trial, postmaster), _sessions(watch, trial)
    t0 = time.monotonic()
    threads = [threading.Thread(target=submit, args=(burst_n // 8 + (i < burst_n % 8),)) for i in range(8)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads) or len(run_ids) < burst_n or _unfinished(watch, list(run_ids)):
        if trial.warm:
            peak = max(peak, len(request(str(trial.socket_path), {"op": "ping"})["running"]))
        else:
            peak = max(peak, _executing(watch))
        time.sleep(0.05)
    burst_s = time.monotonic() - t0
    cpu_per_run = sum(_cpu_delta(stack_cpu_s(trial, postmaster), cpu0).values()) / burst_n
    sessions_per_run = (_sessions(watch, trial) - sessions0) / burst_n
    # A burst can overrun run monitoring's start timeout (each stock run boots a process): count
    # those instead of hiding them; their daemon retries are not waited for.
    failed = [r for r in run_ids if dagster_runs.status(watch, r) != "SUCCESS"]

    time.sleep(3)  # let the burst's stragglers (event consumers, reaped workers) finish
    idle0, idle_sessions0 = stack_cpu_s(trial, postmaster), _sessions(watch, trial)
    time.sleep(idle_s)
    idle_by = {k: 100 * v / idle_s for k, v in _cpu_delta(stack_cpu_s(trial, postmaster), idle0).items()}
    idle_sessions = (_sessions(watch, trial) - idle_sessions0) / idle_s
    return Result(name, seq, burst_n, burst_s, peak, cap, cpu_per_run, sum(idle_by.values()), len(failed),
                  sessions_per_run, idle_by, idle_sessions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.launch_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=20)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--pool-cap", type=int, default=4)
    parser.add_argument("--only", choices=("stock", "warm"), help="measure one launcher only")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="launch-bench-"))
    external = os.environ.get("DATABASE_URL")
    postmaster = None
    if external:
        base = external
    else:
        os.environ["HARNESS_DATA_DIR"] = str(root / "pg")
        postmaster, base = localdb.up(load())
    results = []
    for v in VARIANTS:
        if args.only and v.name != args.only:
            continue
        app_url, dagster_url = with_database(base, f"bench_{v.name}"), with_database(base, f"bench_{v.name}_dagster")
        db.recreate_database(app_url)
        db.recreate_database(dagster_url)
        migrate.migrate(app_url)
        trial = TrialStack(root=root / v.name, port=v.port, app_url=app_url, dagster_url=dagster_url,
                           launcher=v.launcher, coordinator=v.coordinator, max_running=args.pool_cap, with_api=True)
        try:
            trial.start()
            results.append(bench_stack(trial, v.label(), v.cap(args.pool_cap), args.seq, args.burst, args.idle,
                                       postmaster))
        finally:
            trial.stop()
        print(f"{v.name}: done", flush=True)
    if postmaster:
        localdb.down(load())

    print(f"\n### submit -> SUCCESS, {args.seq} sequential hello_job runs\n")
    print("| launcher | p50 s | p90 s | min s | max s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {statistics.median(r.seq):.3f} | {percentile(r.seq, 0.9):.3f} | {min(r.seq):.3f} | "
              f"{max(r.seq):.3f} |")
    print(f"\n### {args.burst} submitted at once\n")
    print("| launcher | succeeded | runs/s | wall s | peak executing | cap | stack CPU-s/run |"
          " idle stack CPU % of one core |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.burst_n - r.failed}/{r.burst_n} | {r.burst_n / r.burst_s:.2f} | {r.burst_s:.1f} | "
              f"{r.max_concurrent} | {'none' if r.cap is None else r.cap} | {r.cpu_per_run_s:.2f} | {r.idle_pct:.1f} ({args.idle:.0f} s) |")
    cols = [*COMPONENTS, "postgres"]
    print(f"\n### where the idle CPU goes (% of one core, {args.idle:.0f} s) and new Postgres sessions\n")
    print("| launcher | " + " | ".join(cols) + " | new sessions/s idle | new sessions per burst run |")
    print("|---|" + "---|" * (len(cols) + 2))
    for r in results:
        cells = " | ".join(f"{r.idle_pct_by_component.get(c, 0.0):.1f}" for c in cols)
        print(f"| {r.name} | {cells} | {r.idle_sessions_per_s:.2f} | {r.sessions_per_run:.1f} |")
    load1, load5, _ = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
          f"dagster {dagster.__version__}, load avg {load1:.2f}/{load5:.2f} at the end (shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
