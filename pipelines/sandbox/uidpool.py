"""Lease a per-run host uid (uid_base + slot) that no other run holds at the same time.

Leases are ``flock``s on one file per slot, so they hold across threads *and* across the
separate processes Dagster starts for runs, and vanish if the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pipelines.sandbox.errors import SandboxError


@dataclass(frozen=True)
class Slot:
    index: int
    uid: int


@contextlib.contextmanager
def lease(uid_base: int, pool_size: int, lock_dir: str) -> Iterator[Slot]:
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    for index in range(pool_size):
        fd = os.open(os.path.join(lock_dir, f"uid-{uid_base + index}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield Slot(index=index, uid=uid_base + index)
        finally:
            os.close(fd)
        return
    raise SandboxError(f"all {pool_size} sandbox uid slots are busy")
