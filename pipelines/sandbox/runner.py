"""``run_sandbox_job``: the one entry point the pipeline uses."""

from __future__ import annotations

from typing import Any

import contracts
from pipelines.sandbox.config import SandboxConfig
from pipelines.sandbox.detect import choose_backend
from pipelines.sandbox.execute import execute


def run_sandbox_job(job: dict[str, Any], *, config: SandboxConfig | None = None) -> dict[str, Any]:
    """Run one job and return its result; raises ``SandboxUnavailable`` if no allowed backend works.

    A command that fails, times out or hits a limit is a normal result. ``isolation`` in the
    result names the backend that actually ran and the properties it enforced.
    """
    config = config or SandboxConfig()
    contracts.validate("sandbox-job", job)
    return execute(job, config, choose_backend(config))
