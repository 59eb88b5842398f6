"""PID files of the processes the harness starts: ``<pid> <start ticks>``.

A pid alone is not proof (pids are recycled, e.g. after a reboot); the start time in clock ticks
from ``/proc/<pid>/stat`` tells the process we started from a stranger that got its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.store import run_workers


def write(path: Path, proc: subprocess.Popen) -> None:
    path.write_text(f"{proc.pid} {run_workers.start_ticks(proc.pid)}\n")


def _read(path: Path) -> tuple[int, int] | None:
    try:
        pid, ticks = (int(x) for x in path.read_text().split())
    except (FileNotFoundError, ValueError):
        return None
    return pid, ticks


def live_pid(path: Path) -> int | None:
    """The pid the file names when that very process (pid + start ticks) is alive."""
    entry = _read(path)
    return entry[0] if entry is not None and run_workers.is_alive(*entry) else None


def stranger(path: Path) -> int | None:
    """The pid the file names when a live process has it but is not the one the file recorded."""
    entry = _read(path)
    if entry is None:
        return None
    ticks = run_workers.start_ticks(entry[0])
    return entry[0] if ticks is not None and ticks != entry[1] else None


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def processes() -> Iterator[tuple[int, bytes, int, int]]:
    """(pid, state, ppid, process group) of every process visible in /proc now."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, ppid, pgrp = raw[raw.rindex(b")") + 2 :].split()[:3]
        yield int(entry), state, int(ppid), int(pgrp)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: a part started by a
    process that lives on (a test) stays a zombie until that process reaps it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(pgrp == pgid and state != b"Z" for _pid, state, _ppid, pgrp in processes())


def _group_gone(pgid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while _group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(path: Path, timeout_s: float = 20.0) -> int | None:
    """SIGTERM the recorded process's group (each runs in its own session, so its children go too)
    and wait until every member is gone -- a child may hold the parent's port -- with SIGKILL after
    ``timeout_s``; remove the file. Returns the pid stopped, if it was alive."""
    pid = live_pid(path)
    if pid is not None:
        signal_group(pid, signal.SIGTERM)
        if not _group_gone(pid, timeout_s):
            signal_group(pid, signal.SIGKILL)
            _group_gone(pid, 5.0)
    path.unlink(missing_ok=True)
    return pid
