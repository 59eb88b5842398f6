"""The pool's guards and the launcher's refusal path, without a database or a stack."""

import json
import socket
import threading
from pathlib import Path

import pytest

from pipelines.launcher import pool as pool_mod
from pipelines.launcher.launcher import WarmPoolRunLauncher
from pipelines.launcher.protocol import WORKER_PID_START_TAG, WORKER_PID_TAG, read_line, worker_of
from pipelines.launcher.version import code_version
from pipelines.orchestration import dagster_internals as di
from pipelines.orchestration.dagster_internals import DagsterLaunchFailedError, LaunchRunContext
from pipelines.orchestration.dagster_runs import APP_RUN_TAG


def _pool(tmp_path: Path) -> pool_mod.Pool:
    return pool_mod.Pool(instance=None, socket_path=tmp_path / "pool.sock", spool_dir=tmp_path,  # type: ignore[arg-type]
                         max_running=2, version=code_version(), snapshots={})


def test_fork_refused_when_a_thread_exists(tmp_path: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert pool_mod.thread_count() > 1
        reply = _pool(tmp_path).accept("run-1")
    finally:
        stop.set()
        thread.join(5)
    assert reply["ok"] is False and reply["retry"] is False
    assert "threads; refusing to fork" in reply["error"]
    assert not (tmp_path / "run-1").exists()


def test_stale_code_refused_with_retry(tmp_path: Path) -> None:
    p = _pool(tmp_path)
    p.version = "not-the-code-on-disk"
    reply = p.accept("run-1")
    assert reply["ok"] is False and reply["retry"] is True
    assert "code changed on disk" in reply["error"] and p.restart


def test_worker_tags() -> None:
    assert worker_of({WORKER_PID_TAG: "12", WORKER_PID_START_TAG: "345"}) == (12, 345)
    assert worker_of({WORKER_PID_TAG: "12"}) is None


def test_worker_tags_are_hidden_from_operators() -> None:
    # The UI lists and filters runs by user tags; the worker pid is plumbing for run monitoring.
    hidden, user = di.TagType.HIDDEN, di.TagType.USER_PROVIDED
    assert di.get_tag_type(WORKER_PID_TAG) == di.get_tag_type(WORKER_PID_START_TAG) == hidden
    assert di.get_tag_type(APP_RUN_TAG) == user


class _Run:
    run_id = "run-1"
    job_name = "hello_job"


def _one_reply_server(path: Path, reply: dict) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            read_line(conn)
            conn.sendall(json.dumps(reply).encode() + b"\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_launch_fails_clearly_on_refusal(tmp_path: Path) -> None:
    path = tmp_path / "pool.sock"
    t = _one_reply_server(path, {"ok": False, "retry": False, "error": "pool pid 1 has 3 threads; refusing to fork"})
    launcher = WarmPoolRunLauncher(socket_path=str(path), launch_wait_seconds=5)
    with pytest.raises(DagsterLaunchFailedError, match="refusing to fork"):
        launcher.launch_run(LaunchRunContext(dagster_run=_Run(), workspace=None))  # type: ignore[arg-type]
    t.join(5)


def test_launch_fails_after_wait_when_no_pool(tmp_path: Path) -> None:
    launcher = WarmPoolRunLauncher(socket_path=str(tmp_path / "absent.sock"), launch_wait_seconds=1)
    with pytest.raises(DagsterLaunchFailedError, match="did not accept run run-1 within 1s"):
        launcher.launch_run(LaunchRunContext(dagster_run=_Run(), workspace=None))  # type: ignore[arg-type]
