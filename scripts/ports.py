"""Whether a loopback TCP port is taken, and by which process: so ``up`` can refuse, naming the
holder, before it starts anything."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp{,6}


def in_use(port: int) -> bool:
    """Whether our servers could not bind 127.0.0.1:``port`` now. A bind, not a connect: it also
    catches a listener on another address of this port, and SO_REUSEADDR (what uvicorn and gRPC
    set) ignores connections lingering in TIME_WAIT. gRPC also sets SO_REUSEPORT and would share
    a port with a stranger that does the same; this probe does not set it, so it sees them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == _LISTEN:
                inodes.add(fields[9])
    return inodes


def holder(port: int) -> str | None:
    """``pid N (command line)`` of a process listening on ``port``; None when no listener is
    visible to us (another user's process, or another network namespace)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in targets for fd in fds):
                return f"pid {entry} ({command_line(int(entry))})"
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return None


def command_line(pid: int, limit: int = 120) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
