"""Containment of the sandbox backends, with real processes, each run bounded by limits and a timeout.

Every property is asserted for both backends: bwrap must contain it; the degraded process
backend must either contain it or leave it out of ``isolation.enforced``.
Needs root, bwrap and util-linux's prlimit/setpriv (as on the development machines); as another user
every test fails, saying how to run it (a skipped security suite would pass unnoticed).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.sandbox import SandboxConfig, SandboxUnavailable, detect, run_sandbox_job
from tests import per_checkout

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# A uid range of its own, so "every process of the pool is gone" cannot be confused with
# runs by anyone else sharing the machine (another checkout's suite included).
POOL = 2
UID_BASE = per_checkout.sandbox_uid_base(POOL)
BWRAP = SandboxConfig(uid_base=UID_BASE, pool_size=POOL)
PROCESS = SandboxConfig(backend="process", allow_degraded=True, uid_base=UID_BASE, pool_size=POOL)
PY = "/usr/bin/python3"
NEEDS_ROOT = ("the sandbox containment suite needs root (the sandbox drops from root to a pool uid inside "
              "cgroups it creates) and did not run: run it as root, e.g. `sudo env PORT=$PORT .venv/bin/pytest "
              "tests/integration/test_sandbox_containment.py`")


@pytest.fixture(autouse=True)
def _as_root() -> None:
    """A security suite that did not run must not pass for one that did: fail, saying how to run it."""
    if os.geteuid() != 0:
        pytest.fail(NEEDS_ROOT, pytrace=False)


@pytest.fixture(params=["bwrap", "process"])
def config(request: pytest.FixtureRequest) -> SandboxConfig:
    return BWRAP if request.param == "bwrap" else PROCESS


def run(config: SandboxConfig, command: str | list[str], **job: Any) -> dict[str, Any]:
    job.setdefault("timeout_ms", 20000)
    return run_sandbox_job({"command": command, **job}, config=config)


def enforces(result: dict[str, Any], prop: str) -> bool:
    return prop in result["isolation"]["enforced"]


@pytest.fixture
def planted_secret() -> Iterator[Path]:
    """A world-readable secret outside any work dir, reachable by path (as a careless host file is)."""
    d = Path(tempfile.mkdtemp(prefix="sbx-host-secret-", dir="/tmp"))
    d.chmod(0o755)
    secret = d / "secret.txt"
    secret.write_text("TOP-SECRET-42\n")
    secret.chmod(0o644)
    yield secret
    shutil.rmtree(d)


def test_detect_reports_bwrap_available_here() -> None:
    status = detect(BWRAP)
    assert status["backend"] == "bwrap"
    assert status["available"] is True
    assert set(status["enforced"]) == {"net", "fs_read", "fs_write", "cpu", "mem", "pids", "fsize", "tree_kill", "uid"}


def test_degraded_backend_refused_unless_allowed() -> None:
    with pytest.raises(SandboxUnavailable, match="allow_degraded"):
        run_sandbox_job({"command": "true"}, config=SandboxConfig(backend="process", uid_base=UID_BASE, pool_size=POOL))


def test_missing_bwrap_is_an_error_not_a_silent_fallback() -> None:
    cfg = SandboxConfig(bwrap_path="/nonexistent/bwrap", uid_base=UID_BASE, pool_size=POOL)
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        run_sandbox_job({"command": "true"}, config=cfg)
    allowed = SandboxConfig(bwrap_path="/nonexistent/bwrap", allow_degraded=True, uid_base=UID_BASE, pool_size=POOL)
    assert run_sandbox_job({"command": "true"}, config=allowed)["isolation"]["backend"] == "process"


def test_runs_as_pool_uid(config: SandboxConfig) -> None:
    result = run(config, "id -u")
    assert int(result["stdout"]) in range(UID_BASE, UID_BASE + POOL)
    assert enforces(result, "uid")


def test_tcp_connect_to_host_loopback(config: SandboxConfig) -> None:
    accepted: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(5)

        def accept() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.close()

        acceptor = threading.Thread(target=accept)
        acceptor.start()
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
        result = run(config, [PY, "-c", probe])
        if not accepted:
            # Unblock the acceptor thread so the test ends promptly.
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        acceptor.join(5)
    if config.backend == "bwrap":
        assert result["exitCode"] != 0 and "connected" not in result["stdout"]
        assert len(accepted) == 1  # only the test's own unblocking connection
        assert enforces(result, "net")
    else:
        assert result["exitCode"] == 0 and "connected" in result["stdout"]
        assert not enforces(result, "net")


def test_read_etc_shadow(config: SandboxConfig) -> None:
    result = run(config, "cat /etc/shadow")
    assert result["exitCode"] != 0
    assert "root:" not in result["stdout"]


def test_read_secret_outside_workdir(config: SandboxConfig, planted_secret: Path) -> None:
    result = run(config, ["cat", str(planted_secret)])
    if config.backend == "bwrap":
        assert result["exitCode"] != 0 and "TOP-SECRET" not in result["stdout"]
        assert enforces(result, "fs_read")
    else:
        assert "TOP-SECRET" in result["stdout"]
        assert not enforces(result, "fs_read")


def test_write_outside_workdir(config: SandboxConfig) -> None:
    target_dir = Path("/tmp") / f"sbx-write-probe-{os.getpid()}-{config.backend}"
    try:
        result = run(config, f"echo pwned > {target_dir}; echo pwned > /usr/pwned; echo pwned > ../pwned; true")
        assert not Path("/usr/pwned").exists()
        if config.backend == "bwrap":
            assert not target_dir.exists()
            assert enforces(result, "fs_write")
        else:
            assert target_dir.exists()
            assert not enforces(result, "fs_write")
    finally:
        target_dir.unlink(missing_ok=True)


def test_busy_loop_killed_at_cpu_limit(config: SandboxConfig) -> None:
    result = run(config, [PY, "-c", "while True: pass"], limits={"cpu_s": 1}, timeout_ms=15000)
    assert not result["timedOut"]  # the CPU limit ended it, not the 15 s wall-clock timeout
    assert result["exitCode"] in (128 + 24, 128 + 9)  # SIGXCPU at the soft limit, SIGKILL at the hard one
    assert enforces(result, "cpu")


def test_1gib_allocation_killed_at_memory_limit(config: SandboxConfig) -> None:
    alloc = "b = b'x' * (1 << 30); print('allocated', len(b))"
    result = run(config, [PY, "-c", alloc], limits={"memory_mb": 128})
    assert result["exitCode"] != 0
    assert "allocated" not in result["stdout"]
    assert enforces(result, "mem")


def test_200_forks_stopped_at_pids_limit(config: SandboxConfig) -> None:
    # Bounded: at most 200 children, each sleeping then exiting; the run's tree kill ends them.
    forks = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(3); os._exit(0)\n"
        "    n += 1\n"
        "print(n)\n"
    )
    result = run(config, [PY, "-c", forks], limits={"pids": 32})
    assert 0 < int(result["stdout"]) < 32
    assert enforces(result, "pids")


def test_2gb_write_stopped_at_file_size_limit(config: SandboxConfig) -> None:
    result = run(config, "head -c 2G /dev/zero > big", limits={"file_mb": 8})
    assert result["exitCode"] == 128 + 25  # SIGXFSZ
    big = next(f for f in result["files"] if f["path"] == "big")
    assert big["size"] <= 8 * 1024 * 1024
    assert enforces(result, "fsize")


def _pool_pids(marker: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if UID_BASE <= uid < UID_BASE + POOL and marker.encode() in cmdline:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_background_grandchildren_gone_after_timeout(config: SandboxConfig) -> None:
    marker = "97.25"  # an unusual sleep length identifies this test's processes on the host
    command = (
        f"setsid sh -c 'sleep {marker}' & "
        f"nohup sleep {marker} >/dev/null 2>&1 & "
        f"(setsid nohup sleep {marker} >/dev/null 2>&1 &); "
        f"sleep {marker}"
    )
    seen: set[int] = set()
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(run(config, command, timeout_ms=1500)))
    worker.start()
    while worker.is_alive():
        seen |= _pool_pids(marker)
        time.sleep(0.05)
    worker.join()
    assert outcome["timedOut"] is True
    assert len(seen) >= 4, f"expected to observe the sleepers, saw {seen}"
    survivors = [pid for pid in seen if _alive(pid)]
    assert survivors == []
    assert enforces(outcome, "tree_kill")


def test_symlink_to_host_file_not_followed(config: SandboxConfig, planted_secret: Path) -> None:
    planted_secret.chmod(0o600)  # only root -- i.e. the collector -- could read it through the link
    result = run(config, f"ln -s {planted_secret} link; ln -s /etc/shadow shadow; echo ok > real.txt")
    assert result["exitCode"] == 0
    assert [f["path"] for f in result["files"]] == ["real.txt"]
    assert result["skipped"] == [{"path": "link", "reason": "symlink"}, {"path": "shadow", "reason": "symlink"}]
    assert "TOP-SECRET" not in str(result)


def test_many_files_sorted(config: SandboxConfig) -> None:
    result = run(config, "mkdir -p d/e; for i in $(seq 1 300); do echo $i > f$i.txt; done; echo x > d/e/z; echo y > d-a")
    paths = [f["path"] for f in result["files"]]
    assert len(paths) == 302
    assert paths == sorted(paths)
    assert paths.index("d-a") < paths.index("d/e/z")
    assert not result["filesTruncated"]


def test_binary_and_crlf_files(config: SandboxConfig) -> None:
    result = run(config, r"printf '\000\001\377' > bin.dat; printf 'a\r\nb\r\n' > crlf.txt")
    files = {f["path"]: f for f in result["files"]}
    assert files["bin.dat"]["size"] == 3 and files["bin.dat"]["omitted"] == "binary"
    assert "content" not in files["bin.dat"]
    assert files["crlf.txt"]["size"] == 6 and files["crlf.txt"]["content"] == "a\nb\n"


def test_input_files_are_seeded(config: SandboxConfig) -> None:
    result = run(config, "cat in/a.txt", files=[{"path": "in/a.txt", "content": "seeded\n"}])
    assert result["stdout"] == "seeded\n"


def test_empty_output(config: SandboxConfig) -> None:
    result = run(config, "true")
    assert (result["exitCode"], result["stdout"], result["stderr"]) == (0, "", "")
    assert result["files"] == []


def test_non_utf8_output(config: SandboxConfig) -> None:
    result = run(config, r"printf 'ok\377\376\n'; printf '\303' >&2")
    assert result["stdout"] == "ok\ufffd\ufffd\n"
    assert result["stderr"] == "\ufffd"


def test_output_truncation_is_flagged(config: SandboxConfig) -> None:
    result = run(config, "head -c 100000 /dev/zero | tr '\\000' a", limits={"output_kb": 1})
    assert result["stdout"] == "a" * 1024
    assert result["stdoutTruncated"] is True
    assert result["stderrTruncated"] is False


@pytest.mark.parametrize("command", [["no-such-command-xyz", "--flag"], "no-such-command-xyz --flag"])
def test_missing_command_exits_127(config: SandboxConfig, command: str | list[str]) -> None:
    result = run(config, command)
    assert result["exitCode"] == 127
    assert "not found" in result["stderr"]


def test_environment_is_the_jobs_not_the_hosts(config: SandboxConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_HOST_ONLY", "leaked")
    result = run(config, "env", env={"GREETING": "hi"})
    assert "GREETING=hi" in result["stdout"]
    assert "SBX_HOST_ONLY" not in result["stdout"]


def test_concurrent_runs_get_distinct_uids(config: SandboxConfig) -> None:
    uids: list[str] = []
    threads = [threading.Thread(target=lambda: uids.append(run(config, "id -u; sleep 0.3")["stdout"])) for _ in range(POOL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(uids) == [f"{UID_BASE + i}\n" for i in range(POOL)]
