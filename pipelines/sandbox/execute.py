"""Run one validated job under a given backend and build its (validated) result."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import contracts
from pipelines.sandbox import cgroups, launcher, supervise, uidpool, workdir
from pipelines.sandbox.collect import collect_files, decode_output
from pipelines.sandbox.config import PROPERTIES, Backend, Limits, SandboxConfig
from pipelines.sandbox.errors import SandboxError

log = logging.getLogger(__name__)

# bwrap: namespaces (net, fs_read, fs_write, tree_kill via the pid namespace), rlimits (cpu per
# process, fsize), a private uid, and mem/pids through the run's cgroups. A run whose cgroups cannot
# give it those limits is refused unless degraded isolation is allowed; it then runs with RLIMIT_AS
# and the per-uid RLIMIT_NPROC as backstops and its result does not claim the missing ones.
BWRAP_ENFORCED = PROPERTIES
CGROUP_LIMITS = ("mem", "pids")
# Process backend: rlimits (cpu, AS for mem, per-uid NPROC for pids, fsize), a private uid,
# and tree_kill through a kill(-1) sweep as that uid. It does NOT isolate network or host files.
PROCESS_ENFORCED = ("cpu", "fsize", "mem", "pids", "tree_kill", "uid")


def execute(job: dict[str, Any], config: SandboxConfig, backend: Backend) -> dict[str, Any]:
    """Run ``job`` under ``backend`` without availability checks (``detect`` uses this to probe)."""
    limits = config.limits.merged(job.get("limits"))
    timeout_s = job.get("timeout_ms", config.default_timeout_ms) / 1000
    tools = launcher.Tools.find(config.bwrap_path)
    command = launcher.shell_argv(job["command"])
    with uidpool.lease(config.uid_base, config.pool_size, config.lock_dir) as slot, \
            workdir.prepared(config.work_root, slot.uid, job.get("files", [])) as wd:
        cg: cgroups.RunCgroup | None = None
        # The chain starts as root with an empty environment; the job's applies after the drop.
        if backend == "bwrap":
            cg, missing = _run_cgroup(config, slot.uid, limits)
            env = launcher.sandbox_env(job.get("env", {}), home=launcher.SANDBOX_WORKDIR)
            inner = launcher.bwrap_argv(tools, str(wd), env, command)
            cwd = None
            reap: Callable[[], None] = cg.kill if cg else _noop
            enforced = [p for p in BWRAP_ENFORCED if p not in missing]
        else:
            env = launcher.sandbox_env(job.get("env", {}), home=str(wd))
            inner = launcher.env_argv(tools, env, command)
            cwd = str(wd)
            reap = _sweeper(tools, slot.uid)
            enforced = list(PROCESS_ENFORCED)
        argv = launcher.chain(
            tools, cg.procs_files if cg else [], limits, config.nofile, slot.uid,
            address_space=cg is None or not cg.mem, inner=inner,
        )
        finished: supervise.Finished | None = None
        try:
            finished = supervise.run(argv, env={}, cwd=cwd, timeout_s=timeout_s,
                                     keep_bytes=limits.output_kb * 1024, reap=reap)
        finally:
            # supervise.run reaps on every normal path; this covers it raising midway.
            if finished is None:
                reap()
            if cg is not None:
                cg.remove()
        collected = collect_files(wd, config.caps)
    result: dict[str, Any] = {
        "exitCode": finished.exit_code,
        "stdout": decode_output(finished.stdout),
        "stderr": decode_output(finished.stderr),
        "stdoutTruncated": finished.stdout_truncated,
        "stderrTruncated": finished.stderr_truncated,
        "timedOut": finished.timed_out,
        "durationMs": finished.duration_ms,
        "files": collected.files,
        "filesTruncated": collected.truncated,
        "skipped": collected.skipped,
        "isolation": {"backend": backend, "enforced": sorted(enforced)},
    }
    return contracts.validate("sandbox-result", result)


def _noop() -> None:
    return None


def _run_cgroup(config: SandboxConfig, uid: int, limits: Limits) -> tuple[cgroups.RunCgroup | None, list[str]]:
    """The run's cgroup and which of its limits (``CGROUP_LIMITS``) it could not get.

    Missing any is degraded isolation: a ``SandboxError`` (before anything runs) unless allowed."""
    cg: cgroups.RunCgroup | None = None
    try:
        cg = cgroups.create(Path(config.cgroup_root), config.cgroup_parent, f"uid-{uid}", limits)
        why = f"no memory/pids cgroup hierarchy under {config.cgroup_root}"
    except OSError as exc:
        why = f"cannot create the run's cgroups: {exc}"
    got = {"mem": cg.mem, "pids": cg.pids} if cg is not None else {}
    missing = [p for p in CGROUP_LIMITS if not got.get(p)]
    if not missing:
        return cg, []
    if not config.allow_degraded:
        if cg is not None:
            cg.remove()
        raise SandboxError(f"no per-run cgroup limit for {', '.join(missing)} ({why}); "
                           "degraded isolation is not allowed (allow_degraded)")
    log.warning("sandbox run degraded, %s not enforced by cgroups (%s); rlimits only", ", ".join(missing), why)
    return cg, missing


def _sweeper(tools: launcher.Tools, uid: int) -> Callable[[], None]:
    argv = launcher.sweep_argv(tools, uid)

    def sweep() -> None:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env={}, timeout=10, check=False)
        # kill(-1) fails with ESRCH when nothing is left, which is the normal case.
        if done.returncode not in (0, 1):
            raise SandboxError(f"uid sweep failed: {done.stderr.decode(errors='replace').strip()}")

    return sweep

