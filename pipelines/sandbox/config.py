"""Sandbox configuration: which backend to use, how far to degrade, and the default limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["bwrap", "process"]

# Every containment property a result can claim; a backend lists the subset it enforces.
PROPERTIES = ("net", "fs_read", "fs_write", "cpu", "mem", "pids", "fsize", "tree_kill", "uid")


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 10
    memory_mb: int = 256
    pids: int = 64
    file_mb: int = 16
    output_kb: int = 256

    def merged(self, overrides: dict[str, int] | None) -> Limits:
        return Limits(**{**self.__dict__, **(overrides or {})})


@dataclass(frozen=True)
class CollectCaps:
    max_files: int = 2000
    max_total_mb: int = 64
    max_content_kb: int = 256
    # Hard stop for the directory walk itself, so a sandbox that made millions of
    # entries cannot make collection (which must see every name to sort) unbounded.
    max_entries: int = 20000


@dataclass(frozen=True)
class SandboxConfig:
    backend: Backend = "bwrap"
    # The process backend does not isolate network or host files; it only runs when
    # this is set, and results then say backend "process".
    allow_degraded: bool = False
    # Each concurrent run gets its own host uid uid_base+slot: per-run RLIMIT_NPROC,
    # file ownership and a uid-wide kill that cannot hit anything else.
    uid_base: int = 200000
    pool_size: int = 64
    limits: Limits = field(default_factory=Limits)
    default_timeout_ms: int = 30000
    nofile: int = 256
    caps: CollectCaps = field(default_factory=CollectCaps)
    work_root: str | None = None
    bwrap_path: str | None = None
    lock_dir: str = "/run/intent-harness-sbx"
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_parent: str = "intent-harness-sbx"
