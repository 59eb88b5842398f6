"""Policy: every runnable mise task declares `sources`; every live-state task is uncached.

A runnable task has `run`; a task that only groups others (`depends`) is exempt. A task whose
run starts with the `uncached` var must list its stamp as its only output, so mise never skips it.
A cached task that runs pytest, ruff or mypy lists `uv.lock` and `pyproject.toml`: a locked upgrade
or a changed setting changes its verdict, so the cached one must not stand.
Usage: python scripts/policy_task_sources.py mise.toml
"""

from __future__ import annotations

import re
import sys
import tomllib

CHECKERS = re.compile(r"\b(pytest|ruff|mypy)\b")
CHECKER_SOURCES = ("uv.lock", "pyproject.toml")


def problems(config: dict) -> list[str]:
    found = []
    tasks = config.get("tasks", {})
    for name, task in sorted(tasks.items()):
        if isinstance(task, str | list):
            found.append(f"task {name!r} is a bare command: give it run + sources")
            continue
        for dep in task.get("depends", []):
            if dep not in tasks:
                found.append(f"task {name!r} depends on unknown task {dep!r}")
        if "run" not in task:
            continue
        if not task.get("sources"):
            found.append(f"task {name!r} runs something but declares no sources")
        run = task["run"] if isinstance(task["run"], str) else " ".join(map(str, task["run"]))
        uncached = "{{vars.uncached}}" in run
        if uncached and task.get("outputs") != [f".data/stamps/{name}"]:
            found.append(f"uncached task {name!r} must declare outputs = [\".data/stamps/{name}\"]")
        if not uncached and CHECKERS.search(run):
            found.extend(f"task {name!r} runs a checker but its sources omit {f!r}"
                         for f in CHECKER_SOURCES if f not in task.get("sources", []))
    return found


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "mise.toml"
    with open(path, "rb") as f:
        found = problems(tomllib.load(f))
    for line in found:
        print(f"policy:task-sources: {line}", file=sys.stderr)
    if not found:
        print(f"policy:task-sources: ok ({path})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
