"""Sandbox runner: execute a plan's commands in isolation and say which isolation they got.

Backends: ``bwrap`` (default; namespaces + cgroups + rlimits, per-run host uid) and
``process`` (degraded: rlimits + new session + per-run uid, no network or host-file
isolation; only with ``allow_degraded``). See ``detect`` for what this host supports.
"""

from pipelines.sandbox.config import PROPERTIES, CollectCaps, Limits, SandboxConfig
from pipelines.sandbox.detect import detect
from pipelines.sandbox.errors import SandboxError, SandboxUnavailable
from pipelines.sandbox.runner import run_sandbox_job

__all__ = [
    "PROPERTIES",
    "CollectCaps",
    "Limits",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailable",
    "detect",
    "run_sandbox_job",
]
