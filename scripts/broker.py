"""The embedded Celery broker: Debian's ``redis-server`` on 127.0.0.1:``PORT``+4000, started and
stopped by PID like the embedded PostgreSQL (``mise run broker:up`` / ``broker:down``).

    python -m scripts.broker up|down|url|status

With ``BROKER_URL`` set, that broker is used and nothing is started. The embedded one keeps no
data on disk (no RDB/AOF): a restart loses what was queued, and run monitoring (start timeout)
fails those STARTING runs, which the retry daemon relaunches. Its PID file is
``<data dir>/run/broker.pid``, its log ``<data dir>/log/broker.log``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

from pipelines.settings import REPO_ROOT, Settings, load
from scripts import pidfiles, ports

NAME = "broker"


def pidfile(settings: Settings) -> Path:
    return settings.run_dir / f"{NAME}.pid"


def argv(settings: Settings, port: int | None = None) -> list[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is missing: `mise run setup` installs Debian's redis-server (as root), "
                         "or set BROKER_URL to a broker of yours")
    return [server, "--port", str(port or settings.broker_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(settings.data_dir), "--daemonize", "no", "--protected-mode", "yes"]


def ping(url: str, timeout_s: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def running(settings: Settings) -> int | None:
    return pidfiles.live_pid(pidfile(settings))


def start(settings: Settings, port: int | None = None) -> int:
    """Start the embedded broker (no wait); its pid."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.log_dir / f"{NAME}.log", "ab") as log:
        proc = subprocess.Popen(argv(settings, port), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    pidfiles.write(pidfile(settings), proc)
    return proc.pid


def up(settings: Settings, timeout_s: float = 20.0, port: int | None = None) -> int | None:
    """Start the embedded broker unless it runs (None with BROKER_URL); return once it answers.
    ``port``: another than PORT+4000 (the test suite's own broker)."""
    if not settings.embedded_broker:
        return None
    port = port or settings.broker_port
    pid = running(settings)
    if pid is None:
        deadline = time.monotonic() + 15.0  # a broker just killed may hold its port a moment
        while ports.in_use(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if ports.in_use(port):
            raise SystemExit(f"broker: port {port} is in use by {ports.holder(port) or 'a process not visible here'}")
        pid = start(settings, port)
    deadline = time.monotonic() + timeout_s
    while not ping(f"redis://127.0.0.1:{port}/0"):
        if running(settings) is None:
            raise SystemExit(f"redis-server exited during start-up; see {settings.log_dir / (NAME + '.log')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"broker not answering on {settings.broker_url} after {timeout_s:.0f}s")
        time.sleep(0.05)
    return pid


def down(settings: Settings) -> int | None:
    return pidfiles.stop(pidfile(settings)) if settings.embedded_broker else None


def main(argv_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.broker")
    parser.add_argument("command", choices=["up", "down", "url", "status"])
    args = parser.parse_args(argv_)
    settings = load()
    if args.command == "up":
        pid = up(settings)
        print(f"broker running (pid {pid}, {settings.broker_url})" if pid else
              f"BROKER_URL is set: using {settings.broker_url}, nothing started", file=sys.stderr)
    elif args.command == "down":
        pid = down(settings)
        print(f"stopped broker pid {pid}" if pid else "embedded broker was not running", file=sys.stderr)
    elif args.command == "url":
        print(settings.broker_url)
    else:
        pid = running(settings)
        print(f"embedded pid {pid}" if pid else ("external" if not settings.embedded_broker else "not running"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
