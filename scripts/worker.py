"""One Celery worker host in the foreground (``mise run worker``): its heartbeat lease and its
Celery worker, as one process tree.

    python -m scripts.worker [--name NAME] [--concurrency N] [--queues a,b]

Defaults from the settings (``HARNESS_WORKER_NAME``, ``HARNESS_WORKER_CONCURRENCY``,
``HARNESS_WORKER_QUEUES``). A worker host shares only PostgreSQL (``APP_DATABASE_URL``/
``DATABASE_URL`` and the Dagster storage) and the broker (``BROKER_URL``) with the stack: its
Dagster instance config, logs and PID files live under its own ``HARNESS_DATA_DIR``.

This process is the host's agent:

1. it takes the worker's lease in ``app.worker_leases`` with a new epoch;
2. starts ``celery -A pipelines.launcher.celery_app worker`` as its child with
   ``HARNESS_WORKER_LEASE=<name>:<epoch>`` (the runs register under it; their checkpoint commits
   check it); each pool child runs up to ``MAX_RUNS_PER_CHILD`` runs before a fresh fork replaces it;
3. renews the lease every TTL/5, and each time marks the runs registered under it whose process
   died (``run_workers.mark_gone``): a pool child killed on a live host is seen by no lease, and
   Celery's task state for it can be lost; the reaper fails such a run. A lease it finds lost (a
   renewal refused, or none succeeded for a whole TTL: Postgres unreachable, or silent behind a
   partition) means its runs are being reaped and re-executed elsewhere: it SIGKILLs its Celery tree at once, then takes a new epoch (once
   Postgres answers again) and starts a fresh Celery worker. Every database call of the agent is
   bounded on the client (``db.deadline``), so a partition that drops packets cannot hold it in
   a call past that point.
4. Celery exiting ends the agent (exit status passed on); SIGTERM/SIGINT stop Celery warmly
   (running runs finish) and release the lease.

Killing the whole tree (a lost machine) leaves the lease to expire: the reaper fails its runs
within TTL plus one reaper tick, and the retry daemon resumes them from failure on another worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
import yaml

from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import db, leases, run_workers
from scripts import pidfiles

log = logging.getLogger("harness.worker")
BIN = Path(sys.executable).parent
STOP_TIMEOUT_S = 60.0
# A pool child runs this many runs, then Celery forks a fresh one from the warm parent. Not 1:
# Celery replaces an exited child on a ~1 s timer, which cost every run ~1.1 s (bench:scale).
MAX_RUNS_PER_CHILD = 100
T = TypeVar("T")


def dagster_home(settings: Settings) -> Path:
    """The worker's own instance config: the stack's dagster.yaml with the Celery run launcher."""
    from scripts.stack import celery_dagster_config

    home = settings.run_dir / "dagster_home_worker"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(celery_dagster_config(settings), sort_keys=False))
    return home


def worker_env(settings: Settings, name: str, epoch: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(dagster_home(settings)),
        DAGSTER_PG_URL=db.dagster_storage_url(settings),
        APP_DATABASE_URL=db.app_url(settings),
        DAGSTER_DATABASE_URL=db.dagster_url(settings),
        HARNESS_DATA_DIR=str(settings.data_dir),
        HARNESS_WORKER_LEASE=f"{name}:{epoch}",
        PGAPPNAME=f"harness-{name}",
        PYTHONUNBUFFERED="1",
    )
    return env


def celery_argv(name: str, concurrency: int, queues: tuple[str, ...]) -> list[str]:
    return [str(BIN / "celery"), "-A", "pipelines.launcher.celery_app", "worker", "-n", f"{name}@%h",
            "-Q", ",".join(queues), "--concurrency", str(concurrency), "--max-tasks-per-child", str(MAX_RUNS_PER_CHILD),
            "--prefetch-multiplier", "1", "-P", "prefork", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-l", "INFO"]


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for child, _state, ppid, _pgrp in pidfiles.processes():
        parents.setdefault(ppid, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


class Agent:
    def __init__(self, settings: Settings, name: str, concurrency: int, queues: tuple[str, ...]):
        self.settings, self.name, self.concurrency, self.queues = settings, name, concurrency, queues
        self.ttl = settings.lease_ttl_s
        self.call_s = self.ttl / 5  # one database call's bound (and the renewal period)
        self.conn: psycopg.Connection | None = None
        self.stopping = False

    def _call(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn`` on the agent's connection, bounded: connecting by ``connect_timeout`` (psycopg
        enforces it on the client), the call by the server's ``statement_timeout`` while the server
        can answer, and by ``db.deadline`` (twice that) when it cannot. psycopg.Error otherwise; the
        connection is then dropped and the next call connects afresh."""
        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = psycopg.connect(db.app_url(self.settings), autocommit=True,
                                            connect_timeout=max(2, round(self.call_s)),
                                            options=f"-c statement_timeout={int(self.call_s * 1000)}")
            with db.deadline(self.conn, 2 * self.call_s):
                return fn(self.conn)
        except psycopg.Error:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            raise

    def _acquire(self) -> int:
        while True:
            try:
                return self._call(partial(leases.acquire, worker=self.name, ttl_s=self.ttl))
            except psycopg.Error as exc:
                log.warning("cannot take lease %s yet: %s", self.name, exc)
                if self.stopping:
                    raise SystemExit(0) from exc
                time.sleep(self.call_s)

    def _start(self, epoch: int) -> subprocess.Popen:
        ready = self.settings.run_dir / "celery.ready"
        ready.unlink(missing_ok=True)
        proc = subprocess.Popen(celery_argv(self.name, self.concurrency, self.queues), cwd=REPO_ROOT,
                                env=worker_env(self.settings, self.name, epoch), stdin=subprocess.DEVNULL)
        log.info("worker %s: lease epoch %s, celery pid %s, queues %s, concurrency %s",
                 self.name, epoch, proc.pid, ",".join(self.queues), self.concurrency)
        return proc

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        epoch = self._acquire()
        proc = self._start(epoch)
        last_ok = time.monotonic()
        while True:
            code = proc.poll()
            if code is not None:
                self._release(epoch)
                return 0 if self.stopping else code
            if self.stopping:
                proc.terminate()  # Celery's warm shutdown: running runs finish
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    kill_tree(proc)
                continue
            try:
                lost = not self._call(partial(leases.renew, worker=self.name, epoch=epoch, ttl_s=self.ttl))
                if not lost:
                    last_ok = time.monotonic()
                    for run_id in self._call(partial(run_workers.mark_gone, worker=self.name, epoch=epoch)):
                        log.warning("worker %s: the process of run %s is gone; the reaper fails the run if it "
                                    "is still started", self.name, run_id)
            except psycopg.Error as exc:
                log.warning("lease %s not renewed: %s", self.name, exc)
                lost = time.monotonic() - last_ok >= self.ttl
            if lost:
                log.error("worker %s lost its lease (epoch %s): killing its celery tree; its runs are re-executed "
                          "elsewhere", self.name, epoch)
                kill_tree(proc)
                epoch = self._acquire()
                proc = self._start(epoch)
                last_ok = time.monotonic()
                continue
            time.sleep(self.call_s)

    def _stop(self, signo: int, _frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("worker %s: %s, stopping celery warmly", self.name, signal.Signals(signo).name)

    def _release(self, epoch: int) -> None:
        try:
            self._call(partial(leases.release, worker=self.name, epoch=epoch))
        except psycopg.Error as exc:
            log.warning("lease %s not released (it expires by itself): %s", self.name, exc)


def main(argv: list[str] | None = None) -> int:
    settings = load()
    parser = argparse.ArgumentParser(prog="scripts.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=settings.worker_name)
    parser.add_argument("--concurrency", type=int, default=settings.worker_concurrency)
    parser.add_argument("--queues", default=",".join(settings.worker_queues))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip())
    return Agent(settings, args.name, args.concurrency, queues).run()


if __name__ == "__main__":
    sys.exit(main())
