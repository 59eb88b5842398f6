"""Deprecations surface: pyproject's pytest filters silence none wholesale, and one our own code
triggers fails the test that triggered it (the suite once ignored every DeprecationWarning)."""

import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_no_filter_ignores_a_whole_warning_category() -> None:
    filters = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    for spec in filters:
        action, message, _category, module = (spec.split(":") + ["", "", "", ""])[:4]
        assert action != "ignore" or (message and module), f"{spec!r}: filter a known warning by message and module"


@pytest.mark.parametrize("module", ["pipelines.resources.app_db", "api.routes.runs"])
def test_a_deprecation_triggered_by_our_code_fails(module: str) -> None:
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("old API", DeprecationWarning, f"{module.replace('.', '/')}.py", 1, module=module)

