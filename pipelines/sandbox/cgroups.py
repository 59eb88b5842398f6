"""Per-run cgroups: memory and pids limits plus a whole-tree kill.

Pure cgroup v2 hosts get one directory with ``memory.max``/``pids.max`` and ``cgroup.kill``.
On v1/v2 hybrids (like the development machines) the limits live in the v1 ``memory`` and
``pids`` hierarchies, and the v2 ``unified`` tree, which has no controllers there, is still
used for ``cgroup.kill``. The launcher joins every directory before it execs the sandbox.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.sandbox.config import Limits

_RMDIR_PATIENCE_S = 2.0


@dataclass
class RunCgroup:
    dirs: list[Path] = field(default_factory=list)
    kill_file: Path | None = None
    mem: bool = False
    pids: bool = False

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def kill(self) -> None:
        """SIGKILL every process in the run, atomically where the kernel offers it."""
        if self.kill_file is not None:
            with contextlib.suppress(OSError):
                self.kill_file.write_text("1")
                return
        # Without cgroup.kill, processes may fork while we iterate; the pids limit
        # bounds that, so repeating until the cgroup is empty terminates.
        for _ in range(200):
            pids = self._member_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        deadline = time.monotonic() + _RMDIR_PATIENCE_S
        # Killed or just-exited members linger for about a millisecond; back off from well below that.
        pause = 0.0005
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY: killed members have not finished exiting yet.
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    self.kill()
                    time.sleep(pause)
                    pause = min(pause * 2, 0.02)

    def _member_pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(line) for line in Path(procs).read_text().split())
        return sorted(found)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _fresh_dir(path: Path) -> Path:
    """Create the run's directory, clearing one a crashed run may have left behind."""
    if path.exists():
        stale = RunCgroup(dirs=[path], kill_file=path / "cgroup.kill" if (path / "cgroup.kill").exists() else None)
        stale.kill()
        stale.remove()
    path.mkdir(parents=True)
    return path


def is_pure_v2(root: Path) -> bool:
    return (root / "cgroup.controllers").exists()


def create(root: Path, parent: str, name: str, limits: Limits) -> RunCgroup:
    """Create and configure the run's cgroups; whatever cannot be set up is left off (and not claimed)."""
    cg = RunCgroup()
    try:
        if is_pure_v2(root):
            _create_v2(cg, root, parent, name, limits)
        else:
            _create_v1(cg, root, parent, name, limits)
    except BaseException:
        cg.remove()
        raise
    return cg


def _create_v2(cg: RunCgroup, root: Path, parent: str, name: str, limits: Limits) -> None:
    _enable_v2_controllers(root, parent)
    d = _fresh_dir(root / parent / name)
    cg.dirs.append(d)
    if (d / "cgroup.kill").exists():
        cg.kill_file = d / "cgroup.kill"
    if (d / "memory.max").exists():
        _write(d / "memory.max", str(limits.memory_mb * 1024 * 1024))
        if (d / "memory.swap.max").exists():
            _write(d / "memory.swap.max", "0")
        cg.mem = True
    if (d / "pids.max").exists():
        _write(d / "pids.max", str(limits.pids))
        cg.pids = True


def _create_v1(cg: RunCgroup, root: Path, parent: str, name: str, limits: Limits) -> None:
    if (root / "memory").is_dir():
        d = _fresh_dir(root / "memory" / parent / name)
        cg.dirs.append(d)
        mem_bytes = str(limits.memory_mb * 1024 * 1024)
        _write(d / "memory.limit_in_bytes", mem_bytes)
        if (d / "memory.memsw.limit_in_bytes").exists():
            _write(d / "memory.memsw.limit_in_bytes", mem_bytes)
        cg.mem = True
    if (root / "pids").is_dir():
        d = _fresh_dir(root / "pids" / parent / name)
        cg.dirs.append(d)
        _write(d / "pids.max", str(limits.pids))
        cg.pids = True
    if (root / "unified").is_dir():
        d = _fresh_dir(root / "unified" / parent / name)
        cg.dirs.append(d)
        if (d / "cgroup.kill").exists():
            cg.kill_file = d / "cgroup.kill"


def _enable_v2_controllers(root: Path, parent: str) -> None:
    (root / parent).mkdir(exist_ok=True)
    for level in (root, root / parent):
        with contextlib.suppress(OSError):
            _write(level / "cgroup.subtree_control", "+memory +pids")
