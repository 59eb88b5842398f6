"""A bwrap run whose cgroups cannot be set up is refused, or, with degraded isolation allowed, runs
without claiming the memory and pids limits it did not get (and the RunView shows that).

The failure is injected through the config: a cgroup root where creating the run's directory fails
(its parent is a file), or one with no memory/pids hierarchy at all.
Needs root, bwrap and util-linux's prlimit/setpriv (as on the development machines).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from api.runview import _sandbox
from pipelines.sandbox import SandboxConfig, SandboxUnavailable, detect, run_sandbox_job
from tests import per_checkout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops from root to a pool uid"),
]

POOL = 2
BWRAP = SandboxConfig(uid_base=per_checkout.sandbox_uid_base(POOL), pool_size=POOL)


@pytest.fixture(params=["unwritable", "no-hierarchy"])
def broken_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "unwritable":
        (tmp_path / "memory").mkdir()
        (tmp_path / "memory" / BWRAP.cgroup_parent).write_text("not a directory\n")
    return str(tmp_path)


def test_a_run_without_its_cgroup_limits_is_refused(broken_root: str) -> None:
    config = dataclasses.replace(BWRAP, cgroup_root=broken_root)
    with pytest.raises(SandboxUnavailable, match="cgroup") as refused:
        run_sandbox_job({"command": "true"}, config=config)
    assert "degraded isolation" in str(refused.value)
    assert detect(config)["available"] is False


def test_degraded_run_does_not_claim_the_limits_it_lacks(broken_root: str) -> None:
    config = dataclasses.replace(BWRAP, cgroup_root=broken_root, allow_degraded=True)
    result = run_sandbox_job({"command": "echo ran"}, config=config)
    assert (result["exitCode"], result["stdout"]) == (0, "ran\n")
    assert result["isolation"]["backend"] == "bwrap"
    assert result["isolation"]["enforced"] == ["cpu", "fs_read", "fs_write", "fsize", "net", "tree_kill", "uid"]
    status = detect(config)
    assert status["enforced"] == result["isolation"]["enforced"] and "mem, pids" in status["reason"]

    rows = {"sandbox": {"status": "succeeded", "output": {"results": [{"name": "echo", "result": result}]}}}
    shown = _sandbox(rows, status)["results"][0]
    assert shown["backend"] == "bwrap" and "mem" not in shown["enforced"] and "pids" not in shown["enforced"]


def test_working_cgroups_are_claimed() -> None:
    result = run_sandbox_job({"command": "true"}, config=BWRAP)
    assert {"mem", "pids"} <= set(result["isolation"]["enforced"])
