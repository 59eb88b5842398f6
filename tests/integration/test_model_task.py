"""`mise run model:up` / `model:status` / `model:down` as processes: started by PID in its own
session, answering on its port, its log under the data dir; stopped by PID with nothing left."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.oc import localmodel
from scripts import pidfiles

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_model_up_status_down(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HARNESS_DATA_DIR": str(tmp_path), "OC_MODEL_PORT": str(port)}
    env.pop("OC_BASE_URL", None)

    def task(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scripts.model", *args], env=env, capture_output=True,
                              text=True, timeout=180)

    try:
        up = task("up")
        assert up.returncode == 0, up.stderr
        assert "started pid" in up.stdout and f"127.0.0.1:{port}" in up.stdout
        pid = pidfiles.live_pid(tmp_path / "run" / "model.pid")
        assert pid is not None and os.getpgid(pid) == pid  # its own session: stopped as a group
        assert localmodel.answers(f"http://127.0.0.1:{port}/v1")
        again = task("up")
        assert again.returncode == 0 and f"already running pid {pid}" in again.stdout
        status = task("status", "--check")
        assert status.returncode == 0 and "answering" in status.stdout
        assert (tmp_path / "log" / "model.log").stat().st_size > 0
    finally:
        down = task("down")
    assert down.returncode == 0 and f"stopped pid {pid}" in down.stdout
    assert pidfiles.live_pid(tmp_path / "run" / "model.pid") is None
    assert not localmodel.answers(f"http://127.0.0.1:{port}/v1")
    stopped = task("status", "--check")
    assert stopped.returncode == 3 and "stopped" in stopped.stdout
