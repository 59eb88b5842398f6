"""The warm-pool launcher on a real private stack (code server, daemon, webserver, pool).

One stack for the module, from a snapshot of the code, on ports PORT+12 (+1000, +2000; see
tests/per_checkout.py) and a data dir under .data/test, where `mise run down` finds it if the
session dies before its teardown. Every wait polls with a deadline, a guard rather than a speed
claim: a worker's death is reported by the pool itself (its message says so); a run whose whole
pool died is failed by run monitoring within one ``poll_interval_seconds`` (5 s) plus a tick, so
it never stays STARTED longer than ``POOL_DEATH_BOUND_S``. How fast a run settles after a kill is
measured by ``mise run bench:crashdemo`` (MODE worker/pool), not asserted here.
"""

import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from dagster import DagsterInstance

from pipelines.jobs.crashdemo import run_config
from pipelines.launcher.protocol import WORKER_PID_START_TAG, WORKER_PID_TAG, request
from pipelines.orchestration import dagster_runs
from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.store import run_workers
from scripts.polling import Timeout
from scripts.suite import stop_stacks
from scripts.trial_stack import DEFAULT_COORDINATOR, WARM_LAUNCHER, TrialStack, wait_for
from tests import per_checkout
from tests.conftest import TEST_DATA_DIR

SETTLE_S = 60.0
POOL_DEATH_BOUND_S = 15.0
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def trial(test_databases) -> Iterator[TrialStack]:
    root = TEST_DATA_DIR / "trial-warm"
    stop_stacks(root)  # a killed session's, if nobody ran `mise run down`; then a fresh root
    shutil.rmtree(root, ignore_errors=True)
    stack = TrialStack(root=root, port=per_checkout.TRIAL_WARM, app_url=test_databases.app_url,
                       dagster_url=test_databases.dagster_url, launcher=WARM_LAUNCHER,
                       coordinator=DEFAULT_COORDINATOR)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(trial: TrialStack) -> DagsterClient:
    # The launch is synchronous in the webserver and may wait out a pool restart.
    return DagsterClient(trial.settings.dagster_ui_url, timeout_s=trial.launch_wait_s + 15)


def _wf(name: str) -> str:
    return f"wf-{name}-{secrets.token_hex(4)}"


def _launch(client: DagsterClient, wf_id: str, crash_at: str = "none", pause_s: float = 0.0) -> str:
    return client.launch("crashdemo", run_config(wf_id, crash_at, pause_s), {"app/run_id": wf_id})


def _marks(trial: TrialStack, wf_id: str) -> dict[str, int]:
    with psycopg.connect(trial.app_url) as conn:
        rows = conn.execute("SELECT step, count(*) FROM app.marks WHERE run_id = %s GROUP BY step", (wf_id,)).fetchall()
    return {step: int(n) for step, n in rows}


def _group(trial: TrialStack, wf_id: str) -> list[dagster_runs.DagsterRun]:
    with psycopg.connect(trial.dagster_url) as conn:
        return dagster_runs.run_group(conn, wf_id)


def _status(trial: TrialStack, run_id: str) -> str | None:
    with psycopg.connect(trial.dagster_url) as conn:
        return dagster_runs.status(conn, run_id)


def _failure_event(trial: TrialStack, run_id: str) -> str:
    """The run's stored failure event (JSON), with the message of whoever reported the failure."""
    with psycopg.connect(trial.dagster_url) as conn:
        row = conn.execute("SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'PIPELINE_FAILURE'",
                           (run_id,)).fetchone()
    return str(row[0]) if row else ""


def _worker(trial: TrialStack, run_id: str) -> tuple[int, int] | None:
    with psycopg.connect(trial.dagster_url) as conn:
        tags = dict(conn.execute("SELECT key, value FROM run_tags WHERE run_id = %s AND key = ANY(%s)",
                                 (run_id, [WORKER_PID_TAG, WORKER_PID_START_TAG])).fetchall())
    if WORKER_PID_TAG not in tags:
        return None
    return int(tags[WORKER_PID_TAG]), int(tags[WORKER_PID_START_TAG])


def _step_status(trial: TrialStack, wf_id: str, step: str) -> str | None:
    with psycopg.connect(trial.app_url) as conn:
        row = conn.execute("SELECT status FROM app.run_steps WHERE run_id = %s AND step = %s", (wf_id, step)).fetchone()
    return row[0] if row else None


def _settled_once(trial: TrialStack, wf_id: str) -> bool:
    runs = _group(trial, wf_id)
    return bool(runs) and runs[-1].status == "SUCCESS" and _marks(trial, wf_id) == {"s1": 1, "s2": 1}


def _paused_in_s2(trial: TrialStack, client: DagsterClient, name: str) -> tuple[str, str, int]:
    """A crashdemo run paused inside s2 (s1 committed): (wf id, run id, live worker pid)."""
    wf_id = _wf(name)
    run_id = _launch(client, wf_id, "s2_before_commit", pause_s=120)
    wait_for("s2 to start", lambda: _step_status(trial, wf_id, "s2") == "running", 30)
    worker = _worker(trial, run_id)
    assert worker is not None and run_workers.is_alive(*worker)
    assert _status(trial, run_id) == "STARTED"
    return wf_id, run_id, worker[0]


def test_hello_runs_in_a_forked_worker(trial: TrialStack, client: DagsterClient) -> None:
    run_id = client.launch("hello_job", {}, {})
    wait_for("hello_job SUCCESS", lambda: _status(trial, run_id) == "SUCCESS", 30)
    pid, _ = _worker(trial, run_id) or (0, 0)
    assert pid and pid != trial.pid("pool")


def test_retry_from_failure_after_worker_self_kill(trial: TrialStack, client: DagsterClient) -> None:
    wf_id = _wf("retry")
    _launch(client, wf_id, "s2_after_commit", pause_s=0)  # the worker SIGKILLs itself after s2 commits
    wait_for("the retry to settle with {s1:1, s2:1}", lambda: _settled_once(trial, wf_id), SETTLE_S, 0.2)
    runs = _group(trial, wf_id)
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"]
    assert runs[1].parent_run_id == runs[0].run_id and runs[1].retry_number == 1


def test_run_killed_after_its_last_step_is_resumed(trial: TrialStack, client: DagsterClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step succeeded but the worker died before the run's success event: Dagster's retry
    daemon refuses a from-failure re-execution ("No steps needed to be retried") and gives up; the
    reaper re-executes all steps, which find their checkpoints: SUCCESS with one mark per step."""
    wf_id = _wf("tail")
    run_id = _launch(client, wf_id)
    wait_for("crashdemo SUCCESS", lambda: _status(trial, run_id) == "SUCCESS", 30)
    for key, value in trial.instance_env().items():
        monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:  # what a worker killed before RUN_SUCCESS leaves behind
        instance.report_run_failed(instance.get_run_by_id(run_id), "worker died after its last step")
    wait_for("the group to settle with {s1:1, s2:1}", lambda: _settled_once(trial, wf_id), SETTLE_S, 0.2)
    runs = _group(trial, wf_id)
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"] and runs[1].parent_run_id == run_id


def test_terminate_cancels_without_retry(trial: TrialStack, client: DagsterClient) -> None:
    wf_id, run_id, pid = _paused_in_s2(trial, client, "term")
    client.terminate(run_id)
    wait_for("CANCELED", lambda: _status(trial, run_id) == "CANCELED", 20)
    wait_for("the worker to exit", lambda: run_workers.start_ticks(pid) is None, 10)
    assert [r.status for r in _group(trial, wf_id)] == ["CANCELED"]
    assert _marks(trial, wf_id) == {"s1": 1}


def test_worker_sigkill_fails_fast_and_retries(trial: TrialStack, client: DagsterClient) -> None:
    wf_id, run_id, pid = _paused_in_s2(trial, client, "wkill")
    os.kill(pid, signal.SIGKILL)
    wait_for("the run to fail", lambda: _status(trial, run_id) == "FAILURE", 30, 0.02)
    # Failed by the pool, which reaped its worker; not by run monitoring or the reaper, which would
    # only notice on their next tick.
    assert f"run worker pid {pid} killed by SIGKILL before the run finished" in _failure_event(trial, run_id)
    wait_for("the retry to settle", lambda: _settled_once(trial, wf_id), SETTLE_S, 0.2)
    assert [r.status for r in _group(trial, wf_id)] == ["FAILURE", "SUCCESS"]


def test_pool_sigkill_fails_in_flight_runs_and_retries(trial: TrialStack, client: DagsterClient) -> None:
    wf_id, run_id, pid = _paused_in_s2(trial, client, "pkill")
    trial.kill("pool")  # the whole process group: the pool and its workers, like a crash
    t0 = time.monotonic()
    wait_for("its worker to die with it", lambda: run_workers.start_ticks(pid) is None, 10)
    trial.start_pool()
    wait_for("run monitoring to fail the orphaned run", lambda: _status(trial, run_id) == "FAILURE",
             POOL_DEATH_BOUND_S, 0.1)
    stuck_s = time.monotonic() - t0
    trial.wait_pool(60)
    wait_for("the retry to settle", lambda: _settled_once(trial, wf_id), SETTLE_S, 0.2)
    assert [r.status for r in _group(trial, wf_id)] == ["FAILURE", "SUCCESS"]
    print(f"pool SIGKILL: STARTED for {stuck_s:.1f}s after the kill")


def test_pool_restart_during_burst_finishes_each_run_once(trial: TrialStack, client: DagsterClient) -> None:
    wf_ids = [_wf(f"burst{i}") for i in range(12)]
    accepted: list[str] = []
    errors: list[BaseException] = []

    def submit() -> None:
        for wf_id in wf_ids:
            try:
                _launch(client, wf_id)
                accepted.append(wf_id)
            except Exception as exc:  # a launch that failed is not an accepted run
                errors.append(exc)

    submitter = threading.Thread(target=submit)
    submitter.start()
    wait_for("a few submissions", lambda: len(accepted) >= 4, 60)
    trial.kill("pool")
    trial.start_pool()
    submitter.join(180)
    assert not submitter.is_alive()
    assert len(accepted) >= 8, errors
    for wf_id in accepted:
        try:
            wait_for(f"{wf_id} to settle", lambda w=wf_id: _settled_once(trial, w), SETTLE_S, 0.2)
        except Timeout as exc:
            raise Timeout(f"{exc}: runs {_group(trial, wf_id)}, marks {_marks(trial, wf_id)}, "
                          f"pool {request(str(trial.socket_path), {'op': 'ping'})}") from None
    for wf_id in accepted:
        runs = _group(trial, wf_id)
        assert _marks(trial, wf_id) == {"s1": 1, "s2": 1}
        assert [r.status for r in runs][-1] == "SUCCESS" and all(r.status in TERMINAL for r in runs)


def test_stale_code_pool_restarts_before_running(trial: TrialStack, client: DagsterClient) -> None:
    socket_path = str(trial.socket_path)
    trial.wait_pool(60)
    before = request(socket_path, {"op": "ping"})
    hello = trial.code_dir / "pipelines" / "jobs" / "hello.py"
    hello.write_text(hello.read_text() + "\n# a deploy changed this file\n")
    run_id = client.launch("hello_job", {}, {})  # refused with retry, then accepted by the re-executed pool
    wait_for("hello_job SUCCESS on the new code", lambda: _status(trial, run_id) == "SUCCESS", 60)
    after = request(socket_path, {"op": "ping"})
    assert after["version"] != before["version"] and after["pid"] == before["pid"]  # re-exec keeps the pid
    assert "code changed on disk" in trial.log("pool")
