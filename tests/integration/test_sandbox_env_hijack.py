"""A job's environment never reaches the root side of the launch chain, and loader/interpreter
hijack variables are refused at the contract.

The scenario: the process backend has no filesystem isolation, so an earlier job can plant a
shared object anywhere its uid may write; a later job asking for ``LD_PRELOAD=<that object>``
must not get it loaded by ``sh``/``prlimit``/``setpriv`` while they still run as root. The
planted object here is compiled from C with a constructor that records the uid it was loaded as.
Needs root, gcc and util-linux's prlimit/setpriv (as on the development machines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import contracts
from pipelines.sandbox import SandboxConfig, run_sandbox_job
from pipelines.sandbox.execute import execute
from tests import per_checkout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops from root to a pool uid"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the planted library"),
]

POOL = 2
PROCESS = SandboxConfig(backend="process", allow_degraded=True, uid_base=per_checkout.sandbox_uid_base(POOL),
                        pool_size=POOL)

# Each process that loads the library leaves marker-<uid>-<pid> holding its executable's path.
_PLANTED_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
    char exe[512] = {0}, path[1024];
    readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(path, sizeof path, "%s/marker-%d-%d", MARKER_DIR, (int)getuid(), (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd >= 0) { write(fd, exe, sizeof exe); close(fd); }
}
"""


@pytest.fixture
def planted() -> Iterator[tuple[Path, Path]]:
    """(the planted library, the directory its markers land in), both reachable by any uid."""
    root = Path(tempfile.mkdtemp(prefix="sbx-planted-", dir="/tmp"))
    root.chmod(0o755)
    markers = root / "markers"
    markers.mkdir()
    markers.chmod(0o1777)
    source, lib = root / "planted.c", root / "planted.so"
    source.write_text(_PLANTED_C)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER_DIR="{markers}"', "-o", str(lib), str(source)],
                   check=True, capture_output=True)
    yield lib, markers
    shutil.rmtree(root)


def _loaded_as_root(markers: Path) -> list[str]:
    return sorted(f"{m.name}: {m.read_bytes().rstrip(bytes(1)).decode()}"
                  for m in markers.iterdir() if m.name.startswith("marker-0-"))


def test_ld_preload_is_refused_by_the_job_contract(planted: tuple[Path, Path]) -> None:
    lib, markers = planted
    with pytest.raises(contracts.ContractViolation, match="/env"):
        run_sandbox_job({"command": "true", "env": {"LD_PRELOAD": str(lib)}}, config=PROCESS)
    assert list(markers.iterdir()) == []


def test_the_jobs_environment_applies_only_after_the_uid_drop(planted: tuple[Path, Path]) -> None:
    """Past the contract (``execute`` does not validate), the root side still never sees the env."""
    lib, markers = planted
    result = execute({"command": "echo ran", "env": {"LD_PRELOAD": str(lib)}}, PROCESS, "process")
    assert result["exitCode"] == 0 and result["stdout"] == "ran\n"
    assert _loaded_as_root(markers) == []
    # The job's own processes (its uid, not root) do get the variable: it is the job's environment.
    assert any(not m.name.startswith("marker-0-") for m in markers.iterdir())


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP",
                                  "PYTHONHOME", "BASH_ENV", "ENV", "PERL5LIB", "PERL5OPT", "RUBYOPT",
                                  "NODE_OPTIONS", "GCONV_PATH", "GLIBC_TUNABLES", "JAVA_TOOL_OPTIONS"])
def test_hijack_variables_are_refused(name: str) -> None:
    found = contracts.violations("sandbox-job", {"command": "true", "env": {name: "x"}})
    assert [v.pointer for v in found] == ["/env"]


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "N_ITEMS", "ld_preload", "MY_LD_PRELOAD"])
def test_ordinary_variables_pass(name: str) -> None:
    assert contracts.violations("sandbox-job", {"command": "true", "env": {name: "x"}}) == []
