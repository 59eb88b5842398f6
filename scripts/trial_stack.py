"""A private stack for the launcher's tests and benchmark: its own DAGSTER_HOME, data dir and ports.

The instance is a copy of ``dagster_home/dagster.yaml`` with the launcher (and coordinator) under
test swapped in; the processes are the ones ``scripts.stack`` starts (code server, daemon,
webserver), plus the warm pool when the launcher is ours. Nothing here touches the default
``.data`` or ports.

The processes run from a snapshot of the code (``snapshot_code``): the working tree is shared
with other engineers, and the pool rightly restarts whenever ``pipelines/`` changes under it.
Bytecode goes to a private cache (``PYTHONPYCACHEPREFIX``): with ``PYTHONDONTWRITEBYTECODE`` set,
every process would compile dagster from source (~25 s per pool start on a busy 2-core box).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.launcher.protocol import ping
from pipelines.settings import REPO_ROOT, Settings, load
from pipelines.store import run_workers
from scripts import pidfiles
from scripts.polling import poll as wait_for

WARM_LAUNCHER: dict[str, Any] = {
    "module": "pipelines.launcher.launcher",
    "class": "WarmPoolRunLauncher",
    "config": {"socket_path": {"env": "HARNESS_POOL_SOCKET"}, "launch_wait_seconds": 15},
}
DEFAULT_LAUNCHER: dict[str, Any] = {"module": "dagster", "class": "DefaultRunLauncher"}
DEFAULT_COORDINATOR: dict[str, Any] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
DAGSTER_COMPONENTS = ("codeserver", "daemon", "webserver")
CODE_PATHS = ("pipelines", "scripts", "contracts", "sql")
PYCACHE = Path("/tmp/harness-launcher-pycache")


def snapshot_code(dest: Path) -> Path:
    """A copy of the importable code (committed HEAD plus the launcher's own working files)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "HEAD", *CODE_PATHS], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for rel in ("pipelines/launcher", "scripts/pool.py"):
        src, dst = REPO_ROOT / rel, dest / rel
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    return dest


def instance_yaml(launcher: dict[str, Any], coordinator: dict[str, Any] | None = None,
                  monitoring: dict[str, Any] | None = None) -> str:
    """Our dagster.yaml with another launcher (and optionally coordinator / monitoring settings)."""
    config = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    config["run_launcher"] = launcher
    if coordinator is not None:
        config["run_coordinator"] = coordinator
    if monitoring:
        config["run_monitoring"] = {**config["run_monitoring"], **monitoring}
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class TrialStack:
    """Boot with ``start()``, stop every process it started with ``stop()``."""

    root: Path  # everything lives under here: data dir, DAGSTER_HOME, logs, PID files
    port: int  # API port; UI is port + 1000, gRPC port + 2000 (the stack's convention)
    app_url: str
    dagster_url: str
    launcher: dict[str, Any]
    coordinator: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None
    max_running: int = 4
    launch_wait_s: int = 30
    with_api: bool = False  # also the HTTP API (the bench measures the whole stack's idle CPU)

    @property
    def warm(self) -> bool:
        return self.launcher is WARM_LAUNCHER or self.launcher.get("class") == WARM_LAUNCHER["class"]

    @property
    def socket_path(self) -> Path:
        return self.settings.run_dir / "pool.sock"

    def __post_init__(self) -> None:
        self.code_dir = snapshot_code(self.root / "code")
        home = self.root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        launcher = self.launcher
        if self.warm:
            launcher = {**launcher, "config": {**launcher["config"], "launch_wait_seconds": self.launch_wait_s}}
        (home / "dagster.yaml").write_text(instance_yaml(launcher, self.coordinator, self.monitoring))
        overrides = {
            "HARNESS_DATA_DIR": str(self.root / "data"), "PORT": str(self.port), "DAGSTER_HOME": str(home),
            "DATABASE_URL": self.app_url, "DAGSTER_DATABASE_URL": self.dagster_url,
        }
        saved = {k: os.environ.get(k) for k in (*overrides, "DAGSTER_PORT", "DAGSTER_GRPC_PORT")}
        os.environ.update(overrides)
        os.environ.pop("DAGSTER_PORT", None)
        os.environ.pop("DAGSTER_GRPC_PORT", None)
        try:
            self.settings: Settings = load()
            from scripts import stack

            self.env = stack.stack_env(self.settings)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.update(HARNESS_POOL_SOCKET=str(self.socket_path), HARNESS_POOL_MAX_RUNNING=str(self.max_running),
                        PYTHONPATH=str(self.code_dir), PYTHONPYCACHEPREFIX=str(PYCACHE))

    def instance_env(self) -> dict[str, str]:
        """What a test process needs to open this stack's DagsterInstance in-process."""
        return {k: self.env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL", "APP_DATABASE_URL",
                                         "HARNESS_POOL_SOCKET")}

    def start(self, timeout_s: float = 90.0) -> None:
        from scripts import stack

        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        names = [*DAGSTER_COMPONENTS, *(["api"] if self.with_api else [])]
        for comp in stack.components(self.settings):
            if comp.name in names and stack.read_pid(self.settings, comp.name) is None:
                self._start(comp.name, comp.argv)
        if self.warm:
            self.start_pool()
        end = time.monotonic() + timeout_s
        for name in names:
            def ready(n: str = name) -> bool:
                return self._alive(n) and stack.ready(self.settings, n)

            wait_for(f"{name} ready", ready, max(end - time.monotonic(), 0.1), 0.2)
        if self.warm:
            self.wait_pool(max(end - time.monotonic(), 0.1))

    def _alive(self, name: str) -> bool:
        from scripts import stack

        if stack.read_pid(self.settings, name) is None:
            raise RuntimeError(f"{name} exited; see {self.settings.log_dir / (name + '.log')}")
        return True

    def start_pool(self) -> int:
        return self._start("pool", [sys.executable, "-m", "scripts.pool"])

    def _start(self, name: str, argv: list[str]) -> int:
        """Like scripts.stack.start (own session, PID file with start ticks), from the code snapshot."""
        from scripts import stack

        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.settings.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=self.code_dir, env=stack.component_env(self.env, name), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        pidfiles.write(self.settings.run_dir / f"{name}.pid", proc)
        return proc.pid

    def wait_pool(self, timeout_s: float = 30.0) -> None:
        wait_for("the warm pool to answer ping",
                 lambda: self._alive("pool") and ping(str(self.socket_path)), timeout_s, 0.05)

    def pid(self, name: str) -> int | None:
        from scripts import stack

        return stack.read_pid(self.settings, name)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal the component's whole process group (its run workers too) and wait until it is gone."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        ticks = run_workers.start_ticks(pid)
        os.killpg(pid, sig)
        wait_for(f"{name} pid {pid} to exit", lambda: not run_workers.is_alive(pid, ticks or -1), 20)
        return pid

    def stop(self) -> None:
        from scripts import stack

        for name in ("api", "pool", *reversed(DAGSTER_COMPONENTS)):
            stack.stop(self.settings, name)

    def log(self, name: str) -> str:
        path = self.settings.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
