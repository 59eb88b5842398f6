"""Build the exec chain that starts a sandboxed command, and the uid-wide sweep.

The service is threaded, so nothing runs between fork and exec (no ``preexec_fn``).
Instead the service execs a chain of tiny programs that each do one step and exec the next:
``sh`` (joins the run's cgroups by writing its own pid) -> ``prlimit`` (rlimits) ->
``setpriv`` (drops to the run's host uid, clears groups, sets no_new_privs) -> ``bwrap``
(namespaces) or ``env -i`` and the command itself. Every step runs as the same pid, so the cgroups and
limits apply before the untrusted command exists. The chain starts with an empty environment and the
job's variables are set only after the drop (``bwrap --setenv``, ``env -i``): a root-side step that saw
``LD_PRELOAD`` would load, as root, whatever library the variable names.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.sandbox.config import Limits

_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
# Running argv lists through sh too gives a missing command the shell's exit code 127
# instead of a launcher error.
_EXEC_ARGV = 'exec "$@"'
_SHELL = "/bin/sh"
SANDBOX_WORKDIR = "/work"
_PATH = "/usr/local/bin:/usr/bin:/bin"
# Beyond /usr, the few host paths a shell and common tools need, all read-only.
# Deliberately no /etc/passwd, /etc/shadow, /home, /root, /opt, /var or /run.
_ETC_READONLY = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class Tools:
    sh: str
    prlimit: str
    setpriv: str
    env: str
    bwrap: str | None

    @classmethod
    def find(cls, bwrap_path: str | None) -> Tools:
        missing = [name for name in ("prlimit", "setpriv", "env") if shutil.which(name) is None]
        if missing:
            raise FileNotFoundError(f"util-linux/coreutils tools not found: {', '.join(missing)}")
        return cls(
            sh=_SHELL,
            prlimit=str(shutil.which("prlimit")),
            setpriv=str(shutil.which("setpriv")),
            env=str(shutil.which("env")),
            bwrap=bwrap_path or shutil.which("bwrap"),
        )


def shell_argv(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        return [_SHELL, "-c", command]
    return [_SHELL, "-c", _EXEC_ARGV, "sh", *command]


def sandbox_env(job_env: dict[str, str], home: str) -> dict[str, str]:
    return {"PATH": _PATH, "HOME": home, "LANG": "C.UTF-8", "TMPDIR": "/tmp", **job_env}


def _rlimits(limits: Limits, nofile: int, address_space: bool) -> list[str]:
    mib = 1024 * 1024
    args = [
        # Soft limit sends SIGXCPU, hard limit one second later SIGKILL.
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--fsize={limits.file_mb * mib}",
        f"--nofile={nofile}",
        # Per-uid count; the uid is private to this run, so it is a per-run process cap.
        f"--nproc={limits.pids}",
        "--core=0",
    ]
    if address_space:
        args.append(f"--as={limits.memory_mb * mib}")
    return args


def _drop(tools: Tools, uid: int) -> list[str]:
    return [tools.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--"]


def chain(tools: Tools, cgroup_procs: Sequence[str], limits: Limits, nofile: int, uid: int,
          address_space: bool, inner: Sequence[str]) -> list[str]:
    return [
        tools.sh, "-c", _JOIN_CGROUPS, "sbx-join", *cgroup_procs, "--",
        tools.prlimit, *_rlimits(limits, nofile, address_space), "--",
        *_drop(tools, uid),
        *inner,
    ]


def env_argv(tools: Tools, env: dict[str, str], command: Sequence[str]) -> list[str]:
    """``command`` with exactly ``env``, set by ``env -i`` (run after the drop, so as the run's uid).
    Names cannot contain ``=`` (the contract's pattern), so every ``K=V`` parses as one variable."""
    return [tools.env, "-i", *(f"{key}={value}" for key, value in sorted(env.items())), *command]


def bwrap_argv(tools: Tools, workdir: str, env: dict[str, str], command: Sequence[str]) -> list[str]:
    if tools.bwrap is None:
        raise FileNotFoundError("bwrap not found")
    args = [tools.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for path in _ROOT_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _ETC_READONLY:
        args += ["--ro-bind-try", path, path]
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
             "--bind", workdir, SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--", *command]


def sweep_argv(tools: Tools, uid: int) -> list[str]:
    """As the run's uid, SIGKILL every process of that uid: kill(-1) is atomic with respect to fork."""
    return [*_drop(tools, uid), tools.sh, "-c", "kill -9 -1"]
