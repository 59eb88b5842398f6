"""What ``up`` starts and configures for HARNESS_RUN_LAUNCHER=celery: the broker first, the worker
hosts last, each with a data dir of its own; Dagster's Celery launcher (with the harness's health
check) on the broker, and a start timeout that a run waiting in the broker does not outlive."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.launcher.celery_app import celery_config
from pipelines.settings import load
from scripts import stack, worker


@pytest.fixture
def celery_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HARNESS_RUN_LAUNCHER", "celery")
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setenv("PORT", "3311")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    # DAGSTER_HOME too: a stack test before this one may have left its generated home there.
    for var in ("BROKER_URL", "DAGSTER_PORT", "DAGSTER_GRPC_PORT", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_broker_first_workers_last_each_in_its_own_data_dir(celery_env: Path) -> None:
    comps = stack.components(load())
    names = [c.name for c in comps]
    assert names[0] == "broker" and names[-2:] == ["worker-1", "worker-2"] and "pool" not in names
    assert "7311" in comps[0].argv and "127.0.0.1" in comps[0].argv
    for comp in comps[-2:]:
        assert dict(comp.env)["HARNESS_DATA_DIR"] == str(celery_env / "workers" / comp.name)
    assert stack.component_ports(load())["broker"] == 7311


def test_an_external_broker_is_not_started(celery_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_URL", "redis://broker.example:6379/0")
    assert "broker" not in [c.name for c in stack.components(load())]


def test_dagster_yaml_uses_the_celery_launcher_on_the_broker(celery_env: Path) -> None:
    settings = load()
    config = yaml.safe_load((stack.dagster_home(settings) / "dagster.yaml").read_text())
    launcher = config["run_launcher"]
    assert launcher["class"] == "HarnessCeleryRunLauncher"
    assert launcher["config"]["broker"] == "redis://127.0.0.1:7311/0"
    assert launcher["config"]["backend"] == "redis://127.0.0.1:7311/1"
    assert launcher["config"]["config_source"] == celery_config(settings)
    assert config["run_monitoring"]["start_timeout_seconds"] == stack.CELERY_START_TIMEOUT_S
    assert config["run_coordinator"]["class"] == "DefaultRunCoordinator"


def test_a_worker_runs_celery_warm_one_child_per_run(celery_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://u@db.example/harness")
    monkeypatch.setenv("DAGSTER_DATABASE_URL", "postgresql://u@db.example/harness_dagster")
    argv = worker.celery_argv("w1", 3, ("dagster", "gpu"))
    assert argv[argv.index("-A") + 1] == "pipelines.launcher.celery_app"
    assert argv[argv.index("--max-tasks-per-child") + 1] == str(worker.MAX_RUNS_PER_CHILD)
    assert argv[argv.index("-Q") + 1] == "dagster,gpu" and argv[argv.index("--concurrency") + 1] == "3"
    env = worker.worker_env(load(), "w1", 4)
    assert env["HARNESS_WORKER_LEASE"] == "w1:4"
    assert Path(env["DAGSTER_HOME"]).is_relative_to(celery_env)
