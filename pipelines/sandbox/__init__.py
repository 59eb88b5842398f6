"""Sandbox runner: execute a plan's commands in isolation and say which isolation they got.

Every run gets a private host uid (``uid_base + slot``), a fresh work dir and rlimits, and is
started through an exec chain (no ``preexec_fn``; see ``launcher``). Backends:

- ``bwrap`` (default): bwrap started *as the pool uid* with all namespaces unshared, read-only
  ``/usr``, tmpfs ``/tmp``, the work dir at ``/work``; memory and pids limits from per-run
  cgroups; tree kill via the pid namespace and ``cgroup.kill``. Enforces all of ``PROPERTIES``; a
  run whose cgroups cannot be set up is refused unless ``allow_degraded``, and then claims no
  ``mem``/``pids`` (RLIMIT_AS and the per-uid RLIMIT_NPROC remain as backstops).
- ``process`` (degraded, only with ``allow_degraded``): rlimits (memory as RLIMIT_AS), new
  session, the pool uid, and a ``kill(-1)`` sweep as that uid. It does NOT isolate the
  network, host file reads or host file writes, and its results leave those out.

CPU is limited per process (RLIMIT_CPU); the wall-clock timeout bounds the run as a whole.
``detect`` probes once what this host supports; nothing falls back silently.
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
