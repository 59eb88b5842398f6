"""The pool's socket protocol: one JSON line in, one JSON line out, one request per connection.

Requests: ``{"op": "launch", "run_id": ..., "job_name": ...}`` (``job_name`` optional: it spares
the pool a read when it announces a queued run), ``{"op": "terminate", "run_id": ...}`` and
``{"op": "ping"}``. Replies carry
``ok``; a refusal has ``error`` and ``retry`` (true while the pool is restarting).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any

from pipelines.orchestration.dagster_internals import HIDDEN_TAG_PREFIX

# Plumbing for the launcher and run monitoring, not for operators: Dagster's UI hides tags under
# its ".dagster/" prefix (TagType.HIDDEN) from run lists and filters, as it does for its own
# ".dagster/run_worker". The app's tags (app/run_id, app/trace_id, ...) stay visible.
WORKER_PID_TAG = f"{HIDDEN_TAG_PREFIX}harness_worker_pid"
WORKER_PID_START_TAG = f"{HIDDEN_TAG_PREFIX}harness_worker_pid_start"
MAX_LINE = 64 * 1024


def worker_of(tags: Mapping[str, str]) -> tuple[int, int] | None:
    """(pid, start ticks) of a run's worker from the run's tags, if the pool tagged it."""
    try:
        return int(tags[WORKER_PID_TAG]), int(tags[WORKER_PID_START_TAG])
    except (KeyError, ValueError):
        return None


class PoolUnreachable(OSError):
    """No pool answered on the socket (not started, restarting, or gone)."""


def request(socket_path: str, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(socket_path)
            sock.sendall(json.dumps(message).encode() + b"\n")
            reply = read_line(sock)
    except (FileNotFoundError, ConnectionError, TimeoutError) as exc:
        raise PoolUnreachable(f"warm pool at {socket_path}: {exc}") from exc
    if not reply:
        raise PoolUnreachable(f"warm pool at {socket_path} closed the connection without a reply")
    return dict(json.loads(reply))


def read_line(sock: socket.socket) -> bytes:
    """Bytes up to the first newline (or EOF); raises ValueError on an oversized line."""
    buf = b""
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ValueError("request line too long")
    return buf.split(b"\n", 1)[0]


def ping(socket_path: str, timeout_s: float = 2.0) -> bool:
    """True when a pool answers on ``socket_path`` and is ready to fork."""
    try:
        return bool(request(socket_path, {"op": "ping"}, timeout_s).get("ok"))
    except (PoolUnreachable, ValueError):
        return False
