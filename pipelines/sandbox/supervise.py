"""Run the launcher chain, capture capped output and enforce the wall-clock timeout.

Waiting is event-driven on the pipes and a pidfd (no polling), so a run's overhead is
not padded by a poll interval. When the top process exits, ``reap`` is called so that
background children still holding the pipes are killed rather than waited for.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# After the top process is gone (or the tree was killed) pipes normally close at once;
# this bounds the wait if something unexpected still holds them.
_DRAIN_S = 2.0
_READ = 1 << 16


@dataclass
class Finished:
    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_ms: int


def run(argv: Sequence[str], *, env: dict[str, str], cwd: str | None, timeout_s: float,
        keep_bytes: int, reap: Callable[[], None]) -> Finished:
    """``reap`` must kill every process of the run; it is called on timeout and after exit."""
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=cwd, close_fds=True, start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    kept = {out_fd: bytearray(), err_fd: bytearray()}
    seen = {out_fd: 0, err_fd: 0}
    open_pipes = {out_fd, err_fd}
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    for fd in (out_fd, err_fd, pidfd):
        sel.register(fd, selectors.EVENT_READ)
    deadline = start + timeout_s
    timed_out = False
    ended_at: float | None = None
    give_up_at = float("inf")
    try:
        while ended_at is None or open_pipes:
            now = time.monotonic()
            if ended_at is None and not timed_out and now >= deadline:
                timed_out = True
                _kill_tree(proc.pid, reap)
                give_up_at = now + _DRAIN_S
            until = deadline if ended_at is None and not timed_out else give_up_at
            if now >= give_up_at:
                break
            for key, _ in sel.select(max(until - now, 0)):
                fd = int(key.fd)
                if fd == pidfd:
                    ended_at = time.monotonic()
                    sel.unregister(pidfd)
                    reap()
                    give_up_at = min(give_up_at, ended_at + _DRAIN_S)
                    continue
                chunk = os.read(fd, _READ)
                if not chunk:
                    sel.unregister(fd)
                    open_pipes.discard(fd)
                    continue
                seen[fd] += len(chunk)
                room = keep_bytes - len(kept[fd])
                if room > 0:
                    kept[fd].extend(chunk[:room])
    finally:
        sel.close()
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            _kill_tree(proc.pid, reap)
        returncode = proc.wait(timeout=_DRAIN_S)
    end = ended_at if ended_at is not None else time.monotonic()
    return Finished(
        # Shell convention for deaths by signal, which is also what bwrap reports for its child.
        exit_code=128 - returncode if returncode < 0 else returncode,
        stdout=bytes(kept[out_fd]),
        stderr=bytes(kept[err_fd]),
        stdout_truncated=seen[out_fd] > keep_bytes,
        stderr_truncated=seen[err_fd] > keep_bytes,
        timed_out=timed_out,
        duration_ms=int((end - start) * 1000),
    )


def _kill_tree(pid: int, reap: Callable[[], None]) -> None:
    reap()
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
