"""The warm pool: a single-threaded zygote that forks one Dagster run worker per run.

Importing dagster and the definitions costs a fresh run worker ~1.4 s; the pool pays it once,
then per run: fork; the child opens pooled storage connections, tags the run with its own (pid,
start ticks) *before* any status write of the run (a tag write racing the run's status writes can
be lost: both rewrite ``runs.run_body``), runs the body of ``dagster api execute_run`` and
``os._exit``s. The parent reaps children and reports a run failed the moment its worker dies
without finishing. On the happy path the parent does no database work per run: with the
NullPool instance a fork-safe parent must keep, every query is a new Postgres session (~7 of them
per run when the parent tagged and re-read each run; Postgres forking those backends was the
largest CPU cost of a burst).

Fork is only safe from a process with one thread and no sockets in use (forking a gRPC or
threaded process hung or crashed 9-13 of 30 times in the prototype), so the pool keeps a NullPool
instance, opens pooled engines only in children, and refuses to fork once it has grown a thread.

Concurrency cap: at most ``max_running`` workers; further runs wait in the pool's own queue,
which is spooled to disk (``spool_dir``, one file per run id) so a pool restart re-adopts them,
shown by ``ping``, announced on the run as an engine event, and cancellable through the
launcher's ``terminate`` (force-terminate from the UI: queued runs are STARTING, which Dagster's
normal terminate refuses; the pool then skips them).

Version safety: the pool hashes the ``pipelines/`` sources before importing them and again on
every launch; when the code on disk moved on, it refuses the launch with ``retry`` (the launcher
keeps retrying) and re-executes itself on the new code. A child also refuses a run whose job
snapshot (made by the code server) differs from the pool's own.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus

from pipelines import logs, telemetry
from pipelines.launcher.protocol import WORKER_PID_START_TAG, WORKER_PID_TAG, ping, read_line, worker_of
from pipelines.launcher.version import code_version
from pipelines.orchestration.dagster_internals import capture_interrupts, execute_run_body
from pipelines.orchestration.dagster_storage import SchemaCachingPostgresRunStorage
from pipelines.sandbox.resource import SandboxResource
from pipelines.store import run_workers

__all__ = ["Pool", "exit_worker", "ping", "serve", "thread_count"]

log = logging.getLogger("harness.pool")

SAFETY_TICK_S = 1.0  # SIGCHLD wakes the loop at once; this only bounds a missed wake-up
CLIENT_TIMEOUT_S = 1.0
# Pooled engines in the worker (what dagster-webserver does): ops 0.19 -> 0.055 s per trivial
# run. No statement timeout: a run's event writes may legitimately be large.
WORKER_DB = {"statement_timeout": 0, "pool_recycle": 3600, "max_overflow": 10}
UNFINISHED = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def exit_worker(code: int) -> None:
    """A forked worker's only way out: flush its spans (``os._exit`` skips the SDK's atexit
    flush, and the spans still batched would be lost) and its stdio, then exit at once."""
    telemetry.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


@dataclass
class Pool:
    instance: DagsterInstance
    socket_path: Path
    spool_dir: Path
    max_running: int
    version: str
    snapshots: dict[str, str]
    running: dict[int, str] = field(default_factory=dict)  # worker pid -> run id
    queue: deque[str] = field(default_factory=deque)
    restart: str | None = None  # why the pool must re-execute itself, once the reply is sent

    # ---------------------------------------------------------------- requests
    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "ping":
            threads = thread_count()
            return {"ok": threads == 1 and self.restart is None, "pid": os.getpid(), "version": self.version,
                    "threads": threads, "max_running": self.max_running,
                    "running": sorted(self.running.values()), "queued": list(self.queue)}
        run_id = str(message.get("run_id", ""))
        if op == "launch":
            return self.accept(run_id, message.get("job_name"))
        if op == "terminate":
            return self.terminate(run_id)
        return {"ok": False, "retry": False, "error": f"unknown op {op!r}"}

    def accept(self, run_id: str, job_name: str | None = None) -> dict[str, Any]:
        current = code_version()
        if current != self.version:
            self.restart = f"code changed on disk ({self.version} -> {current})"
        if self.restart:
            return {"ok": False, "retry": True, "error": f"pool restarting: {self.restart}"}
        threads = thread_count()
        if threads != 1:
            return {"ok": False, "retry": False,
                    "error": f"pool pid {os.getpid()} has {threads} threads; refusing to fork "
                             "(fork is only safe from a single-threaded process): restart the pool"}
        if run_id in self.queue or run_id in self.running.values():
            return {"ok": True, "queued": run_id in self.queue}  # a launcher retrying after a lost reply
        (self.spool_dir / run_id).touch()
        self.queue.append(run_id)
        ahead = len(self.queue) - 1 + len(self.running) - self.max_running
        if ahead >= 0:
            run = None if job_name else self.instance.get_run_by_id(run_id)
            if job_name or run is not None:
                self.instance.report_engine_event(
                    f"Queued in the warm pool behind {ahead} run(s) (cap {self.max_running} running); "
                    "force-terminate to cancel.", run, job_name=job_name, run_id=run_id)
        return {"ok": True, "queued": ahead >= 0}

    def terminate(self, run_id: str) -> dict[str, Any]:
        if run_id in self.queue:
            self.queue.remove(run_id)
            self._unspool(run_id)
            run = self.instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                self.instance.report_run_canceled(run, "Canceled while queued in the warm pool.")
            return {"ok": True}
        for pid, rid in self.running.items():
            if rid == run_id:
                os.kill(pid, signal.SIGINT)  # capture_interrupts turns it into a clean cancel
                return {"ok": True}
        return {"ok": False, "retry": False, "error": f"run {run_id} is not in this pool"}

    # ---------------------------------------------------------------- workers
    def adopt_spooled(self) -> None:
        """Queue the runs a previous pool accepted but never started (still STARTING, no live worker)."""
        for path in sorted(self.spool_dir.iterdir(), key=lambda p: p.stat().st_mtime):
            run = self.instance.get_run_by_id(path.name)
            worker = worker_of(run.tags) if run else None
            if run is None or run.status != DagsterRunStatus.STARTING or (worker and run_workers.is_alive(*worker)):
                path.unlink(missing_ok=True)
            else:
                log.info("re-adopting spooled run %s", path.name)
                self.queue.append(path.name)

    def start_queued(self, close_in_child: list[int]) -> None:
        while self.queue and len(self.running) < self.max_running and self.restart is None:
            run_id = self.queue.popleft()
            self.fork_worker(run_id, close_in_child)

    def fork_worker(self, run_id: str, close_in_child: list[int]) -> None:
        threads = thread_count()
        if threads != 1:
            self._unspool(run_id)
            run = self.instance.get_run_by_id(run_id)
            if run is not None:
                self.instance.report_run_failed(run, f"warm pool has {threads} threads; refused to fork")
            return
        pid = os.fork()
        if pid == 0:
            for fd in close_in_child:
                os.close(fd)
            self._child(run_id)
        self.running[pid] = run_id
        self._unspool(run_id)

    def _child(self, run_id: str) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ["PGAPPNAME"] = "harness-run-worker"  # its sessions apart from the pool's own
            self.instance.optimize_for_webserver(**WORKER_DB)
            run = self.instance.get_run_by_id(run_id)
            stale = self._stale_snapshot(run)
            if run is not None and stale:
                self.instance.report_run_failed(run, stale)
            elif run is not None and run.status == DagsterRunStatus.STARTING:
                logs.bind(service="run-worker", dagster_run_id=run_id, app_run_id=run.tags.get("app/run_id"))
                # Tagged before the run's first status write, so the two cannot race; a worker
                # that dies before this line is failed by the pool (it knows the pid).
                pid = os.getpid()
                self.instance.add_run_tags(run_id, {WORKER_PID_TAG: str(pid),
                                                    WORKER_PID_START_TAG: str(run_workers.start_ticks(pid))})
                with capture_interrupts():
                    code = execute_run_body(run_id, self.instance, lambda _event: None,
                                            set_exit_code_on_failure=False)
            else:
                code = 0  # canceled or failed while queued: nothing to run
        except BaseException:
            traceback.print_exc()
        finally:
            exit_worker(code)

    def _stale_snapshot(self, run: Any) -> str | None:
        """Why the run must not execute here: the code server built it from other code."""
        if run is None or run.op_selection or run.asset_selection or run.asset_check_selection:
            return None  # subset snapshots differ by design; the source hash still guards them
        ours = self.snapshots.get(run.job_name)
        if ours is None or run.job_snapshot_id == ours:
            return None
        return (f"warm pool refused run {run.run_id}: the code server built job {run.job_name} as snapshot "
                f"{run.job_snapshot_id}, the pool (code {self.version}) has {ours}; restart the code server "
                "and the pool together")

    def reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run_id = self.running.pop(pid, None)
            if run_id is None:
                continue  # a worker of the pool image before a re-exec: its run is tagged and monitored
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                continue  # exit 0 only after Dagster recorded the run's outcome (or there was none)
            run = self.instance.get_run_by_id(run_id)
            if run is None or run.status not in UNFINISHED:
                continue
            message = f"run worker pid {pid} {_exit_reason(status)} before the run finished"
            log.warning("run %s: %s", run_id, message)
            if run.status == DagsterRunStatus.CANCELING:
                self.instance.report_run_canceled(run, message)
            else:
                self.instance.report_run_failed(run, message)

    def _unspool(self, run_id: str) -> None:
        (self.spool_dir / run_id).unlink(missing_ok=True)

    # ---------------------------------------------------------------- loop
    def loop(self) -> None:
        listener = _listen(self.socket_path)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _signo, _frame: None)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        close_in_child = [listener.fileno(), wake_r, wake_w, sel.fileno()]
        log.info("warm pool pid %s ready on %s (code %s, cap %s running)",
                 os.getpid(), self.socket_path, self.version, self.max_running)
        while self.restart is None:
            for key, _ in sel.select(SAFETY_TICK_S):
                if key.fileobj is listener:
                    self._serve_clients(listener)
                else:
                    while _drain(wake_r):
                        pass
            self.reap()
            self.start_queued(close_in_child)
        log.warning("re-executing the pool: %s", self.restart)
        sel.close()
        listener.close()
        self.socket_path.unlink(missing_ok=True)

    def _serve_clients(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            with conn:
                try:
                    conn.settimeout(CLIENT_TIMEOUT_S)
                    reply = self.handle(json.loads(read_line(conn) or b"{}"))
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except Exception:
                    log.exception("bad pool request")


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _listen(path: Path) -> socket.socket:
    if ping(str(path)):
        raise SystemExit(f"another warm pool already answers on {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a stale socket file of a pool that died
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(128)
    listener.setblocking(False)
    return listener


def serve(socket_path: Path, max_running: int, spool_dir: Path | None = None) -> None:
    """Import everything once, then fork runs until the code changes (then re-execute)."""
    version = code_version()
    from pipelines.definitions import defs

    instance = DagsterInstance.get()
    # Ask the schema questions once here, so forked workers inherit the answers
    # (pipelines/dagster_storage.py) instead of each reflecting the runs table.
    if isinstance(instance.run_storage, SchemaCachingPostgresRunStorage):
        instance.run_storage.has_run_stats_index_cols()
    snapshots = {job.name: job.get_job_snapshot_id() for job in defs.resolve_all_job_defs()}
    # Probe the sandbox once here, so forked workers inherit a working answer instead of each
    # starting its own probe (one more process per run to be starved or killed on a busy host).
    sandbox = (defs.resources or {}).get("sandbox")
    if isinstance(sandbox, SandboxResource):
        log.info("sandbox: %s", sandbox.status()["reason"])
    telemetry.preload()  # tracing on: the SDK imported once here, not in every worker (no thread started)
    if code_version() != version:
        _reexec("code changed while the pool was importing it")
    spool = spool_dir or socket_path.with_name("pool-spool")
    spool.mkdir(parents=True, exist_ok=True)
    pool = Pool(instance, socket_path, spool, max_running, version, snapshots)
    pool.adopt_spooled()
    # Everything imported so far lives as long as the pool: keep the collector from touching
    # (and so copy-on-write-faulting) those pages in every child.
    gc.freeze()
    pool.loop()
    _reexec(pool.restart or "restart requested")


def _reexec(why: str) -> None:
    log.warning("pool re-executing itself: %s", why)
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", "scripts.pool", *sys.argv[1:]])
