"""Imports point down the layers (read statically from every module's source):

    entry points (definitions, launcher/)  →  jobs/ + sensors/  →  resources/  →
    orchestration/  →  store/  →  domain (oc/, sandbox/)  →  settings, clock, telemetry

and in the domain packages only the resources import dagster.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT

PIPELINES = REPO_ROOT / "pipelines"
# Layer of each part of pipelines/, lowest first; a module may import its own layer or lower ones.
LAYERS = [
    {"settings", "clock", "telemetry", "logs"},
    {"oc", "sandbox"},
    {"store"},
    {"orchestration"},
    {"resources"},
    {"jobs", "sensors"},
    {"launcher", "definitions"},
]


def _part(module: str) -> str | None:
    """``pipelines.store.repo`` → ``store``; None for anything outside pipelines."""
    names = module.split(".")
    if names[0] != "pipelines" or len(names) < 2:
        return None
    return names[1]


def _rank(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports(path: Path) -> list[str]:
    module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" if _part(f"{base}.{alias.name}") else base for alias in node.names]
    return found


MODULES = sorted(p for p in PIPELINES.rglob("*.py") if p.name != "__init__.py" or p.parent != PIPELINES)


def test_every_part_of_pipelines_has_a_layer() -> None:
    parts = {p.relative_to(PIPELINES).parts[0].removesuffix(".py") for p in MODULES}
    assert parts == set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(PIPELINES).parts[0].removesuffix(".py")
    upward = []
    for imported in _imports(path):
        part = _part(imported)
        if imported.split(".")[0] in ("api", "scripts", "tests", "bench"):
            upward.append(imported)
        elif part is not None and part in set().union(*LAYERS) and _rank(part) > _rank(own):
            upward.append(imported)
    assert upward == [], f"{path.relative_to(REPO_ROOT)} ({own}) imports a higher layer: {upward}"


@pytest.mark.parametrize("package", ["oc", "sandbox"])
def test_only_resources_import_dagster_in_the_domain_packages(package: str) -> None:
    users = sorted(p.name for p in (PIPELINES / package).rglob("*.py")
                   if any(m.split(".")[0] == "dagster" for m in _imports(p)))
    assert users == ["resource.py"]


def test_the_store_imports_only_settings_and_clock_beside_itself() -> None:
    for path in (PIPELINES / "store").rglob("*.py"):
        parts = {_part(m) for m in _imports(path)} - {None}
        assert parts <= {"store", "settings", "clock", "telemetry"}, path
