"""`up` refuses before it starts anything, and `status` answers with readable exit codes: the real
`python -m scripts.stack` against real strangers (a process listening on a port, a PID file whose
pid another process has), on a data dir of its own with the embedded PostgreSQL.
"""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT, load
from pipelines.store import run_workers
from scripts import stack
from tests import per_checkout

PORT = per_checkout.PREFLIGHT
PORTS = {"api": PORT, "webserver": PORT + 1000, "codeserver": PORT + 2000}
LISTEN = "import socket, time; s = socket.create_server(('127.0.0.1', {port})); print('ready', flush=True); time.sleep(600)"


def run_stack(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "APP_DATABASE_URL", "DAGSTER_DATABASE_URL", "DAGSTER_PORT",
                        "DAGSTER_GRPC_PORT")}
    env.update(HARNESS_DATA_DIR=str(data_dir), PORT=str(PORT), HARNESS_RUN_LAUNCHER="warm")
    return subprocess.run([sys.executable, "-m", "scripts.stack", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    # Only matters when `up` wrongly went ahead: stop whatever it started, by PID.
    stack.down(dataclasses.replace(load(), data_dir=tmp_path / "data", external_database_url=None, run_launcher="warm"))


@contextlib.contextmanager
def stranger(*argv: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def assert_nothing_started(data_dir: Path) -> None:
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert sorted((data_dir / "run").glob("*.pid")) == []
    assert not (data_dir / "log").exists()


@pytest.mark.parametrize("component", sorted(PORTS))
def test_up_refuses_a_port_a_stranger_holds_and_starts_nothing(data_dir: Path, component: str) -> None:
    port = PORTS[component]
    with stranger(sys.executable, "-c", LISTEN.format(port=port)) as listener:
        assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
        result = run_stack(data_dir, "up")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"port {port} ({component}) is in use by pid {listener.pid}" in result.stderr
        assert "nothing started" in result.stderr
        assert_nothing_started(data_dir)
        # status names the holder too, and still answers 0.
        status = run_stack(data_dir, "status")
        assert status.returncode == 0
        assert f"in use by pid {listener.pid}" in status.stdout


def test_up_refuses_a_pid_file_naming_a_stranger(data_dir: Path) -> None:
    with stranger("sleep", "600") as sleeper:
        run_dir = data_dir / "run"
        run_dir.mkdir(parents=True)
        ticks = run_workers.start_ticks(sleeper.pid)
        assert ticks is not None
        # As if `api` had run with this pid before a reboot: the pid is alive, the start time differs.
        (run_dir / "api.pid").write_text(f"{sleeper.pid} {ticks + 1}\n")
        result = run_stack(data_dir, "up")
        assert result.returncode == 1
        assert f"{run_dir / 'api.pid'} names pid {sleeper.pid} (sleep 600)" in result.stderr
        assert not (data_dir / "pg" / "postmaster.pid").exists()
        assert [p.name for p in run_dir.glob("*.pid")] == ["api.pid"]


def test_up_refuses_a_postmaster_pid_naming_a_stranger(data_dir: Path) -> None:
    with stranger("sleep", "600") as sleeper:
        pgdata = data_dir / "pg"
        pgdata.mkdir(parents=True)
        # The file a crashed PostgreSQL leaves; PostgreSQL itself would refuse to start over it.
        (pgdata / "postmaster.pid").write_text(f"{sleeper.pid}\n{pgdata}\n1\n5432\n{pgdata}\n")
        result = run_stack(data_dir, "up")
        assert result.returncode == 1
        assert f"{pgdata / 'postmaster.pid'} names pid {sleeper.pid} (sleep 600)" in result.stderr
        assert sorted((data_dir / "run").glob("*.pid")) == []


def test_status_of_a_stopped_stack_exits_0_and_check_exits_3(data_dir: Path) -> None:
    result = run_stack(data_dir, "status")
    assert result.returncode == 0, result.stderr
    states = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert states == dict.fromkeys(["postgres", "pool", "codeserver", "daemon", "webserver", "api"], "stopped")
    check = run_stack(data_dir, "status", "--check")
    assert check.returncode == stack.NOT_ALL_UP == 3
    assert check.stdout == result.stdout


def test_up_on_new_ports_refuses_while_the_data_dirs_stack_runs_on_others(data_dir: Path) -> None:
    with stranger("sleep", "600") as part:
        run_dir = data_dir / "run"
        run_dir.mkdir(parents=True)
        # The data dir's api, as `up` recorded it, still running on the ports of another PORT.
        (run_dir / "api.pid").write_text(f"{part.pid} {run_workers.start_ticks(part.pid)}\n")
        (run_dir / "ports.json").write_text(json.dumps({"api": 1, "webserver": 2, "codeserver": 3}))
        result = run_stack(data_dir, "up")
        assert result.returncode == 1
        assert f"the stack in {data_dir} already runs (api) on ports" in result.stderr
        assert not (data_dir / "pg" / "postmaster.pid").exists()
