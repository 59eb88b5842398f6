"""The API under uvicorn in a process of its own, for benches that measure it from outside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A loopback port the OS picked free (not a fixed range: other checkouts' stacks are about)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api(app_url: str, dagster_url: str, log: Path) -> Iterator[str]:
    """Serve the API on the given databases, Dagster unreachable; yield its base URL. Its output goes
    to ``log``, not a pipe nobody drains: a full pipe would stall the server mid-bench (an outage
    logs a warning per failed reconnection)."""
    port = free_port()
    env = {**os.environ, "APP_DATABASE_URL": app_url, "DAGSTER_DATABASE_URL": dagster_url, "PORT": str(port),
           "DAGSTER_PORT": str(free_port()), "DAGSTER_GRPC_PORT": str(free_port())}
    env.pop("API_TOKEN", None)
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start on {url}; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code < 500
    except httpx.HTTPError:
        return False
