"""Detection remembers a working backend and asks again after a failed probe."""

from __future__ import annotations

import importlib

import pytest

from pipelines.sandbox.config import SandboxConfig

# The package exports the function under the module's name.
detect_module = importlib.import_module("pipelines.sandbox.detect")


def test_a_failed_probe_is_asked_again_and_a_working_one_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([("bwrap probe exited 137: ", []), (None, ["mem", "net", "pids"])])
    calls: list[str] = []

    def probe(config: SandboxConfig, backend: str) -> tuple[str | None, list[str]]:
        calls.append(backend)
        return next(answers)

    monkeypatch.setattr(detect_module, "_probe", probe)
    monkeypatch.setattr(detect_module, "_available", {})
    config = SandboxConfig(backend="bwrap", uid_base=123000)
    first = detect_module.detect(config)
    assert (first["available"], first["reason"]) == (False, "bwrap probe exited 137: ; degraded isolation not allowed")
    assert [detect_module.detect(config)["available"] for _ in range(3)] == [True, True, True]
    assert calls == ["bwrap", "bwrap"]  # probed on the failure and once more; then remembered
