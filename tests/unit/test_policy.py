import subprocess
import sys
import tomllib
from pathlib import Path

from scripts.policy_task_sources import problems

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((ROOT / "mise.toml").read_text())


def test_project_mise_toml_passes() -> None:
    assert problems(_config()) == []


def test_task_without_sources_fails(tmp_path: Path) -> None:
    text = (ROOT / "mise.toml").read_text() + '\n[tasks.sneaky]\nrun = "echo hi"\n'
    path = tmp_path / "mise.toml"
    path.write_text(text)
    result = subprocess.run([sys.executable, str(ROOT / "scripts/policy_task_sources.py"), str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "'sneaky' runs something but declares no sources" in result.stderr


def test_uncached_task_needs_its_stamp_output() -> None:
    config = _config()
    config["tasks"]["db:reset"]["outputs"] = []
    assert any("db:reset" in p for p in problems(config))


def test_reset_tasks_are_uncached() -> None:
    tasks = _config()["tasks"]
    for name in ("db:reset", "db:sys:reset"):
        assert tasks[name]["run"].startswith("{{vars.uncached}}")


def test_unknown_dependency_fails() -> None:
    config = _config()
    config["tasks"]["quick"]["depends"] = ["lint", "nope"]
    assert any("unknown task 'nope'" in p for p in problems(config))


def test_checker_task_must_list_the_lockfile() -> None:
    """A cached `test` that ignores uv.lock would pass on a dependency upgrade it never ran against."""
    config = _config()
    config["tasks"]["test"]["sources"] = [s for s in config["tasks"]["test"]["sources"] if s != "uv.lock"]
    assert problems(config) == ["task 'test' runs a checker but its sources omit 'uv.lock'"]
