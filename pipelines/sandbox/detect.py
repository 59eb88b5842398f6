"""Probe once which backend can run here, so healthz and the RunView can show it cheaply.

The bwrap probe is a real run as a pool uid: it must exit 0 and see only ``lo`` in
``/proc/net/dev``. That catches user namespaces being disabled (sysctl, AppArmor, a
container's seccomp) which merely finding the binary would not.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.sandbox.config import Backend, SandboxConfig
from pipelines.sandbox.errors import SandboxError, SandboxUnavailable
from pipelines.sandbox.execute import BWRAP_ENFORCED, PROCESS_ENFORCED, execute

_PROBE_TIMEOUT_MS = 10000


def _interfaces(proc_net_dev: str) -> list[str]:
    return sorted(line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line)


def _probe(config: SandboxConfig, backend: Backend) -> tuple[str | None, list[str]]:
    """(None, what the probe run enforced) when ``backend`` works here, else (why not, [])."""
    if os.geteuid() != 0:
        return "the service must run as root to drop each run to its own pool uid", []
    job = {"command": "cat /proc/net/dev", "timeout_ms": _PROBE_TIMEOUT_MS}
    try:
        result = execute(job, config, backend)
    except (OSError, SandboxError) as exc:
        return f"{backend} probe failed: {exc}", []
    if result["exitCode"] != 0:
        return f"{backend} probe exited {result['exitCode']}: {result['stderr'].strip()[:300]}", []
    if backend == "bwrap" and _interfaces(result["stdout"]) != ["lo"]:
        return f"bwrap probe saw network interfaces {_interfaces(result['stdout'])}, expected only lo", []
    return None, result["isolation"]["enforced"]


def _status(backend: Backend, enforced: list[str], reason: str) -> dict[str, Any]:
    # The probe's own result says what runs get here (a run without its cgroups claims less).
    full = BWRAP_ENFORCED if backend == "bwrap" else PROCESS_ENFORCED
    lacking = sorted(set(full) - set(enforced))
    if lacking:
        reason += f"; degraded: {', '.join(lacking)} not enforced"
    return {"backend": backend, "available": True, "enforced": sorted(enforced), "reason": reason}


def _unavailable(backend: Backend, reason: str) -> dict[str, Any]:
    return {"backend": backend, "available": False, "enforced": [], "reason": reason}


def _detect(config: SandboxConfig) -> dict[str, Any]:
    bwrap_problem: str | None = None
    if config.backend == "bwrap":
        bwrap_problem, enforced = _probe(config, "bwrap")
        if bwrap_problem is None:
            return _status("bwrap", enforced, "probe ok: ran as a pool uid, only lo visible")
    if not config.allow_degraded:
        if bwrap_problem is not None:
            return _unavailable("bwrap", f"{bwrap_problem}; degraded isolation not allowed")
        return _unavailable("process", "process backend is degraded isolation and allow_degraded is false")
    process_problem, enforced = _probe(config, "process")
    if process_problem is not None:
        return _unavailable("process", f"{bwrap_problem + '; ' if bwrap_problem else ''}{process_problem}")
    prefix = f"bwrap unavailable ({bwrap_problem}); " if bwrap_problem else ""
    return _status("process", enforced, f"{prefix}degraded: no network or host-file isolation")


# Only a working backend is remembered: a failed probe may have been a passing state of the machine
# (a probe process killed or starved under load), and caching it would fail every later run.
_available: dict[SandboxConfig, dict[str, Any]] = {}


def detect(config: SandboxConfig | None = None, *, refresh: bool = False) -> dict[str, Any]:
    """``{backend, available, enforced, reason}`` for the backend runs will use; probed once per
    config when it works, again on every call while it does not."""
    config = config or SandboxConfig()
    if refresh:
        _available.clear()
    status = _available.get(config)
    if status is None:
        status = _detect(config)
        if status["available"]:
            _available[config] = status
    return dict(status)


def choose_backend(config: SandboxConfig) -> Backend:
    status = detect(config)
    if not status["available"]:
        raise SandboxUnavailable(status["reason"])
    backend: Backend = status["backend"]
    return backend
