"""The durability proof, as one readable script (runbook W1, on Dagster).

    MODE=worker|server|stack|postgres|pool|celery-worker|broker POINT=s2_before_commit|s2_after_commit \
        python -m scripts.crashdemo_proof            # one proof, its stack on PORT+3 (3004)
    N=20 python -m scripts.crashdemo_proof --soak    # N proofs cycling modes and points
    MODES=celery-worker,broker N=20 python -m scripts.crashdemo_proof --soak   # only those modes

1. boot the stack (proc1) on its own data dir and ports;
2. launch a crashdemo run with a unique workflow id, paused at the crash point in s2;
3. once s1 has committed (and, for s2_after_commit, s2 too), SIGKILL what MODE names:
   worker = the run worker; server = run worker + code server; stack = every harness process
   (pool, code server, daemon, webserver, API, run worker; Postgres stays up); postgres = restart
   PostgreSQL under the paused run; pool = the warm pool and its workers; celery-worker = the whole
   Celery worker host running the run (its agent, Celery and the run's child: a lost machine; the
   other worker resumes it once the lease expires); broker = SIGKILL and restart Redis under the
   paused run. The celery modes boot the proof stack with HARNESS_RUN_LAUNCHER=celery, WORKERS=2;
4. restart what was killed, then poll the rows with a deadline until they settle;
5. assert exactly one s1 and one s2 mark for that id and a SUCCESS as the final Dagster run of
   its run group; print the run group and the settle time. Exit 1 when the invariant fails.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psycopg

from pipelines.jobs.crashdemo import run_config as crashdemo_run_config
from pipelines.orchestration import dagster_runs
from pipelines.orchestration.dagster_client import DagsterClient, DagsterUnavailable
from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import db, localdb, run_workers
from scripts import stack
from scripts.polling import Timeout, poll

MODES = ("worker", "server", "stack", "postgres", "pool", "celery-worker", "broker")
CELERY_MODES = ("celery-worker", "broker")
POINTS = ("s2_before_commit", "s2_after_commit")
PAUSE_S = 120.0  # the kill always comes long before the pause would end
# MODE=postgres restarts the server inside a short pause and kills nothing: the paused step
# then meets a dead connection, fails, and the run retries from failure.
POSTGRES_PAUSE_S = 4.0
DEADLINE_S = 120.0


class ProofFailed(AssertionError):
    pass


@dataclass
class ProofResult:
    wf_id: str
    mode: str
    point: str
    marks: dict[str, int]
    group: list[dagster_runs.DagsterRun]
    settle_s: float  # from the stack being back (restarts done) to settled
    total_s: float  # from the kill to settled
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def marks(app_url: str, wf_id: str) -> dict[str, int]:
    with psycopg.connect(app_url) as conn:
        rows = conn.execute("SELECT step, count(*) FROM app.marks WHERE run_id = %s GROUP BY step ORDER BY step",
                            (wf_id,)).fetchall()
    return {step: int(n) for step, n in rows}


def group(dagster_url: str, wf_id: str) -> list[dagster_runs.DagsterRun]:
    with psycopg.connect(dagster_url) as conn:
        return dagster_runs.run_group(conn, wf_id)


def _step_running(app_url: str, wf_id: str, step: str) -> bool:
    with psycopg.connect(app_url) as conn:
        row = conn.execute("SELECT status FROM app.run_steps WHERE run_id = %s AND step = %s",
                           (wf_id, step)).fetchone()
    return bool(row and row[0] in ("running", "succeeded"))


def launch(settings: Settings, app_url: str, wf_id: str, point: str, pause_s: float,
           tags: Mapping[str, str] | None = None) -> str:
    """Launch a crashdemo run for ``wf_id`` (``tags`` beside its app run id: e.g. a route)."""
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute("INSERT INTO app.workflow_runs (wf_id, crash_at, pause_s) VALUES (%s, %s, %s)",
                     (wf_id, point, pause_s))
    client = DagsterClient(settings.dagster_ui_url)
    # After a Postgres restart the webserver's pooled connections are stale and its first
    # requests answer HTTP 500 before any run is created; a short bounded retry rides that out.
    # A timeout is not retried: that launch may have gone through.
    for attempt in range(5):
        try:
            return client.launch("crashdemo", crashdemo_run_config(wf_id, point, pause_s),
                                 {**(tags or {}), "app/run_id": wf_id})
        except DagsterUnavailable as exc:
            if exc.status is None or attempt == 4:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def worker_pid(app_url: str, dagster_run_id: str) -> int:
    with psycopg.connect(app_url) as conn:
        found = run_workers.lookup(conn, dagster_run_id)
    if found is None:
        raise ProofFailed(f"run {dagster_run_id} has no registered worker")
    _, pid, ticks = found
    if not run_workers.is_alive(pid, ticks):
        raise ProofFailed(f"worker pid {pid} of run {dagster_run_id} is already gone")
    return pid


def restart_postgres(settings: Settings) -> None:
    """Immediate shutdown (SIGQUIT: no checkpoint, like a crash), then start on the same data."""
    info = localdb.running(settings)
    if info is None:
        raise ProofFailed("MODE=postgres needs the embedded PostgreSQL (unset DATABASE_URL)")
    os.kill(info[0], signal.SIGQUIT)
    poll("PostgreSQL to stop", lambda: localdb.running(settings) is None, 30)
    localdb.up(settings)


def prove(settings: Settings, mode: str, point: str, *,
          postgres_restart: Callable[[], None] | None = None) -> ProofResult:
    """One proof on a running stack; the stack is running again when it returns."""
    app_url, dagster_url = db.app_url(settings), db.dagster_url(settings)
    wf_id = f"wf-{mode}-{point}-{time.strftime('%H%M%S')}-{secrets.token_hex(3)}"
    short = mode in ("postgres", "broker")  # nothing is killed: the paused run must finish by itself
    dagster_run_id = launch(settings, app_url, wf_id, point, POSTGRES_PAUSE_S if short else PAUSE_S)
    paused_step = "s2" if point == "s2_before_commit" else None
    poll("s1 to commit", lambda: marks(app_url, wf_id).get("s1") == 1, 60)
    if paused_step:
        poll("s2 to reach its crash point", lambda: _step_running(app_url, wf_id, "s2"), 60)
    else:
        poll("s2 to commit", lambda: marks(app_url, wf_id).get("s2") == 1, 60)
    time.sleep(0.3)  # let the op enter its pause; the kill lands inside it either way
    pid = worker_pid(app_url, dagster_run_id)

    killed = time.monotonic()
    if mode == "worker":
        os.kill(pid, signal.SIGKILL)
    elif mode == "server":
        os.kill(pid, signal.SIGKILL)
        stack.kill(settings, ["codeserver"], signal.SIGKILL)
    elif mode == "stack":
        os.kill(pid, signal.SIGKILL)
        stack.kill(settings, [c.name for c in stack.components(settings)], signal.SIGKILL)
    elif mode == "pool":
        if settings.run_launcher != "warm":
            raise ProofFailed("MODE=pool needs the warm launcher (HARNESS_RUN_LAUNCHER=warm)")
        stack.kill(settings, ["pool"], signal.SIGKILL)  # its process group: the pool and its workers
    elif mode == "postgres":
        (postgres_restart or (lambda: restart_postgres(settings)))()
    elif mode in CELERY_MODES:
        if settings.run_launcher != "celery" or not settings.embedded_broker or settings.workers < 2:
            raise ProofFailed(f"MODE={mode} needs HARNESS_RUN_LAUNCHER=celery, the embedded broker and WORKERS>=2")
        if mode == "broker":
            stack.kill(settings, ["broker"], signal.SIGKILL)
            stack.up(settings)  # Redis again, empty: what was queued or recorded there is gone
        else:
            with psycopg.connect(app_url) as conn:
                lease = run_workers.lease_of(conn, dagster_run_id)
            if lease is None:
                raise ProofFailed(f"run {dagster_run_id} has no worker lease")
            lost_host = lease[0]
            stack.kill(settings, [lost_host], signal.SIGKILL)  # its whole process group
    else:
        raise ValueError(f"unknown MODE {mode!r}; expected one of {', '.join(MODES)}")
    # A Celery pool child outlives its run (it runs the next ones): only a killed one must be gone.
    if mode != "broker" and not (mode == "postgres" and settings.run_launcher == "celery"):
        poll("the killed worker to be gone", lambda: run_workers.start_ticks(pid) is None, 30)
    if mode in ("server", "stack", "pool"):
        stack.up(settings)
    back = time.monotonic()

    def settled() -> bool:
        runs = group(dagster_url, wf_id)
        return bool(runs) and runs[-1].settled and marks(app_url, wf_id) == {"s1": 1, "s2": 1}

    problems: list[str] = []
    try:
        poll("the run group to settle with {s1:1, s2:1}", settled, DEADLINE_S, 0.2)
    except Timeout as exc:
        problems.append(str(exc))
    done = time.monotonic()
    if mode == "celery-worker":
        stack.up(settings)  # the lost host comes back (a new lease epoch) for the next proof
    result = ProofResult(wf_id, mode, point, marks(app_url, wf_id), group(dagster_url, wf_id), done - back,
                         done - killed, problems)
    if result.marks != {"s1": 1, "s2": 1}:
        problems.append(f"marks for {wf_id} are {result.marks}, expected {{'s1': 1, 's2': 1}}")
    if not result.group or result.group[-1].status != "SUCCESS":
        problems.append(f"final run of {wf_id}'s group is {result.group[-1].status if result.group else 'missing'}")
    return result


def print_group(result: ProofResult) -> None:
    print(f"run group of {result.wf_id} (root first):")
    for r in result.group:
        print(f"  {r.run_id}  {r.status:<8} retry={r.retry_number} parent={r.parent_run_id or '-'} "
              f"root={r.root_run_id or '-'}")


def proof_settings(modes: tuple[str, ...] = ()) -> Settings:
    """The proof's own stack: its own data dir (so its own embedded Postgres) and ports, PORT+3
    (3004 by default), so it runs beside this checkout's own stack on PORT. A celery kill mode
    boots it with the Celery launcher and two worker hosts."""
    if any(m in CELERY_MODES for m in modes):
        os.environ.setdefault("HARNESS_RUN_LAUNCHER", "celery")
        os.environ.setdefault("WORKERS", "2")
    os.environ["PORT"] = str(load().api_port + 3)
    os.environ.setdefault("HARNESS_DATA_DIR", str(REPO_ROOT / ".data" / f"proof-{os.environ['PORT']}"))
    return load()


def soak(settings: Settings, n: int, modes: tuple[str, ...] = MODES) -> int:
    combos = [(m, p) for m in modes for p in POINTS]
    if not settings.embedded:
        combos = [(m, p) for m, p in combos if m != "postgres"]
    if settings.run_launcher != "warm":
        combos = [(m, p) for m, p in combos if m != "pool"]
    if settings.run_launcher != "celery":
        combos = [(m, p) for m, p in combos if m not in CELERY_MODES]
    results = []
    for i in range(n):
        mode, point = combos[i % len(combos)]
        r = prove(settings, mode, point)
        results.append(r)
        print(f"[{i + 1}/{n}] {mode:<8} {point:<16} {'held' if r.held else 'FAILED'}  settle {r.settle_s:.1f}s"
              f" (kill -> settled {r.total_s:.1f}s)"
              + ("" if r.held else f"  {'; '.join(r.problems)}"), flush=True)
    print()
    print("| mode | point | runs | settled | exactly-once held | settle after stack back p50 / max s |"
          " kill -> settled p50 / max s |")
    print("|---|---|---|---|---|---|---|")
    for mode, point in combos:
        rs = [r for r in results if (r.mode, r.point) == (mode, point)]
        if not rs:
            continue
        back = [r.settle_s for r in rs]
        total = [r.total_s for r in rs]
        settled = sum(1 for r in rs if r.group and r.group[-1].settled)
        print(f"| {mode} | {point} | {len(rs)} | {settled} | {sum(r.held for r in rs)}/{len(rs)} | "
              f"{statistics.median(back):.1f} / {max(back):.1f} | {statistics.median(total):.1f} / {max(total):.1f} |")
    held = sum(r.held for r in results)
    print(f"\n{held}/{len(results)} held; machine: {os.cpu_count()} cores, {os.uname().release}")
    return 0 if held == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.crashdemo_proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--mode", default=os.environ.get("MODE", "worker"), choices=MODES)
    parser.add_argument("--point", default=os.environ.get("POINT", "s2_before_commit"), choices=POINTS)
    parser.add_argument("--keep-up", action="store_true", help="leave the proof stack running")
    args = parser.parse_args(argv)
    soak_modes = tuple(m for m in os.environ.get("MODES", ",".join(MODES)).split(",") if m)
    if unknown := [m for m in soak_modes if m not in MODES]:
        parser.error(f"MODES: unknown {unknown}; expected some of {', '.join(MODES)}")
    settings = proof_settings(soak_modes if args.soak else (args.mode,))
    print(f"booting the proof stack (data {settings.data_dir}, API port {settings.api_port})", flush=True)
    stack.up(settings)
    try:
        if args.soak:
            return soak(settings, int(os.environ.get("N", "20")), soak_modes)
        result = prove(settings, args.mode, args.point)
        print_group(result)
        print(f"marks {result.marks}; settled {result.settle_s:.1f}s after the stack was back "
              f"({result.total_s:.1f}s after the kill)")
        if not result.held:
            print("INVARIANT FAILED: " + "; ".join(result.problems), file=sys.stderr)
            return 1
        print(f"PASS: {args.mode}/{args.point} held exactly-once for {result.wf_id}")
        return 0
    finally:
        if not args.keep_up:
            stack.down(settings)


if __name__ == "__main__":
    sys.exit(main())
