"""Dagster resources for the sandbox: the real runner and a scripted test double."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from dagster import ConfigurableResource

import contracts
from pipelines.sandbox.config import Backend, Limits, SandboxConfig
from pipelines.sandbox.detect import detect
from pipelines.sandbox.errors import SandboxError
from pipelines.sandbox.runner import run_sandbox_job

_BACKENDS: tuple[Backend, ...] = ("bwrap", "process")


class SandboxResource(ConfigurableResource):
    """Runs jobs via ``run_sandbox_job``; each result's ``isolation`` says what the run really got."""

    backend: str = "bwrap"
    allow_degraded: bool = False
    uid_base: int = 200000
    pool_size: int = 64
    default_timeout_ms: int = 30000
    cpu_s: int = Limits.cpu_s
    memory_mb: int = Limits.memory_mb
    pids: int = Limits.pids
    file_mb: int = Limits.file_mb
    output_kb: int = Limits.output_kb

    def sandbox_config(self) -> SandboxConfig:
        if self.backend not in _BACKENDS:
            raise ValueError(f"sandbox backend must be one of {_BACKENDS}, got {self.backend!r}")
        backend: Backend = "bwrap" if self.backend == "bwrap" else "process"
        return SandboxConfig(
            backend=backend,
            allow_degraded=self.allow_degraded,
            uid_base=self.uid_base,
            pool_size=self.pool_size,
            default_timeout_ms=self.default_timeout_ms,
            limits=Limits(cpu_s=self.cpu_s, memory_mb=self.memory_mb, pids=self.pids,
                          file_mb=self.file_mb, output_kb=self.output_kb),
        )

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        return run_sandbox_job(job, config=self.sandbox_config())

    def status(self) -> dict[str, Any]:
        """What ``detect`` found for this configuration (cached), for healthz and the RunView."""
        return detect(self.sandbox_config())


_BLANK_RESULT: dict[str, Any] = {
    "exitCode": 0, "stdout": "", "stderr": "", "stdoutTruncated": False, "stderrTruncated": False,
    "timedOut": False, "durationMs": 0, "files": [], "filesTruncated": False, "skipped": [],
}


class ScriptedSandbox:
    """Test double with ``SandboxResource``'s interface that executes nothing.

    It returns the scripted results in order (partial dicts are filled from a blank
    successful result), always with ``isolation.backend == "scripted"`` and nothing enforced.
    Jobs and results are validated against the same contracts as the real runner. Pass an
    instance directly as a Dagster resource value.
    """

    def __init__(self, results: Iterable[dict[str, Any]]):
        self._results = [copy.deepcopy(r) for r in results]
        self._lock = threading.Lock()
        self.jobs: list[dict[str, Any]] = []

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        contracts.validate("sandbox-job", job)
        with self._lock:
            if not self._results:
                raise SandboxError(f"ScriptedSandbox has no result left for job #{len(self.jobs) + 1}: {job['command']!r}")
            scripted = self._results.pop(0)
            self.jobs.append(copy.deepcopy(job))
        claimed = scripted.get("isolation", {}).get("backend", "scripted")
        if claimed != "scripted":
            raise ValueError(f"a scripted result must not claim backend {claimed!r}")
        result = {**copy.deepcopy(_BLANK_RESULT), **scripted, "isolation": {"backend": "scripted", "enforced": []}}
        return contracts.validate("sandbox-result", result)

    def status(self) -> dict[str, Any]:
        return {"backend": "scripted", "available": True, "enforced": [], "reason": "test double: nothing is executed"}
