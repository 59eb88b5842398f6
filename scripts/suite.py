"""What the test suite keeps under this checkout's ``.data/test*``: the lock a test session holds
on its data dir while it runs, and stopping what a killed session left running (``mise run down``).

A session's own teardown stops its stacks and its embedded PostgreSQL; this is for the session
that never reached it (SIGKILL, a closed terminal). ``python -m scripts.suite`` does only this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pipelines.settings import REPO_ROOT, load
from pipelines.store import localdb
from scripts import pidfiles

LOCK_NAME = "session.lock"


def _exclusive(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def session(data_dir: Path) -> Iterator[Callable[[], bool]]:
    """Hold ``data_dir`` for one test session (a shared lock: sessions may share a server, see
    HARNESS_TEST_DB). Yields ``alone()``: True when no other session holds it any more, and from
    then on none can start until this one has finished stopping what they would share."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield lambda: _exclusive(lock)


def stop_stacks(root: Path) -> list[tuple[Path, int]]:
    """Stop every process a live PID file of a stack under ``root`` names (``<data dir>/run/*.pid``)."""
    stopped = []
    for path in sorted(root.rglob("run/*.pid")):
        pid = pidfiles.stop(path)
        if pid is not None:
            stopped.append((path, pid))
    return stopped


def stop_leftovers(data_root: Path = REPO_ROOT / ".data") -> list[str]:
    """Stop what test sessions left under ``data_root/test*``: their stacks, then each embedded
    PostgreSQL. A data dir that a running session holds is left alone. Returns what it did."""
    done = []
    for root in sorted(p for p in data_root.glob("test*") if p.is_dir()):
        with open(root / LOCK_NAME, "a") as lock:
            if not _exclusive(lock):
                done.append(f"{root}: a test session is running there, left alone")
                continue
            done += [f"{path}: stopped pid {pid}" for path, pid in stop_stacks(root)]
            for postmaster in sorted(root.rglob("pg/postmaster.pid")):
                settings = dataclasses.replace(load(), data_dir=postmaster.parent.parent, external_database_url=None)
                pid = localdb.down(settings)
                if pid is not None:
                    done.append(f"{settings.pgdata}: stopped PostgreSQL pid {pid}")
    return done


if __name__ == "__main__":
    # `.ci/run` calls this when CI ends; `mise run down` does the same after stopping the stack.
    for line in stop_leftovers():
        print(line)
