"""HARNESS_RUN_LAUNCHER=celery as real processes: the stack (code server, daemon, webserver, API)
launching through Dagster's CeleryRunLauncher onto the suite's Redis, and two worker hosts
(``WORKERS=2``), each its own process tree, data dir and heartbeat lease. Intents over HTTP spread
over both workers and succeed exactly once; a worker host SIGKILLed as a whole (a lost machine),
frozen past its lease, or cut off from PostgreSQL by the network has its run reaped by lease
expiry and resumed from failure on another, effects exactly once. Some tests start worker hosts
of their own beside the two, each consuming a queue of its own: an intent routed there by
``constraints.queue`` runs there only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pipelines.jobs.crashdemo import run_config as crashdemo_run_config
from pipelines.orchestration import routing
from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.settings import Settings, load
from pipelines.store import run_workers
from scripts import broker, stack
from scripts import crashdemo_proof as proof
from tests import per_checkout
from tests.conftest import TEST_DATA_DIR, TestDatabases
from tests.integration.test_stack_e2e import DEMO, _wait_final
from tests.tcp_cut import BLACKHOLE, TcpCut

N_INTENTS = 6
BACKLOG = 8


@pytest.fixture(scope="module")
def celery_stack(test_databases: TestDatabases, test_broker: str) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", test_databases.app_url)
        mp.setenv("APP_DATABASE_URL", test_databases.app_url)
        mp.setenv("DAGSTER_DATABASE_URL", test_databases.dagster_url)
        mp.setenv("HARNESS_DATA_DIR", str(TEST_DATA_DIR / "stack-celery"))
        mp.setenv("HARNESS_RUN_LAUNCHER", "celery")
        mp.setenv("BROKER_URL", test_broker)
        mp.setenv("WORKERS", "2")
        mp.setenv("PORT", str(per_checkout.E2E_CELERY))
        for var in ("DAGSTER_PORT", "DAGSTER_GRPC_PORT", "API_TOKEN", "HARNESS_WORKER_LEASE"):
            mp.delenv(var, raising=False)
        settings = load()
        try:
            stack.up(settings)
            yield settings
        finally:
            stack.down(settings)


@pytest.fixture
def api(celery_stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{celery_stack.api_port}", timeout=40) as client:
        yield client


def _workers_of(app_url: str, dagster_run_ids: list[str]) -> dict[str, str]:
    with psycopg.connect(app_url) as conn:
        rows = conn.execute("SELECT dagster_run_id, worker FROM app.run_workers WHERE dagster_run_id = ANY(%s)",
                            (dagster_run_ids,)).fetchall()
    return dict(rows)


def test_intents_over_http_spread_over_both_workers_each_once(api: httpx.Client, celery_stack: Settings,
                                                              test_databases: TestDatabases) -> None:
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    run_ids = [api.post(f"/intents/{intent_id}/run", json={"traceId": f"celery-{i}"}).json()["runId"]
               for i in range(N_INTENTS)]
    views = [_wait_final(api, run_id, 180) for run_id in run_ids]
    assert [v["status"] for v in views] == ["succeeded"] * N_INTENTS
    for view in views:  # exactly once: one Dagster run, every step done on its first attempt
        assert len(view["dagsterRuns"]) == 1, view["dagsterRuns"]
        assert [(s["status"], s["attempts"]) for s in view["steps"]] == [("succeeded", 1)] * 3, view["steps"]
    workers = _workers_of(test_databases.app_url, [v["dagsterRuns"][0]["runId"] for v in views])
    assert len(workers) == N_INTENTS
    assert set(workers.values()) == {"worker-1", "worker-2"}, workers
    with psycopg.connect(test_databases.app_url) as conn:
        (artifacts,) = conn.execute("SELECT count(DISTINCT run_id) FROM app.artifacts WHERE run_id = ANY(%s)",
                                    (run_ids,)).fetchone()
    assert artifacts == N_INTENTS


@contextlib.contextmanager
def _host(celery_stack: Settings, name: str, queue: str, app_url: str, dagster_url: str) -> Iterator[Path]:
    """One more worker host beside the stack's two, consuming only ``queue``, reaching PostgreSQL
    at these URLs (all of it: app and Dagster storage); stopped when the block ends. Yields its
    data dir."""
    urls = (("DATABASE_URL", app_url), ("APP_DATABASE_URL", app_url), ("DAGSTER_DATABASE_URL", dagster_url))
    stack.start(celery_stack, stack.worker(celery_stack, name, (queue,), urls), stack.stack_env(celery_stack))
    try:
        stack.wait_ready(celery_stack, [name], 120)
        yield stack.worker_data_dir(celery_stack, name)
    finally:
        stack.stop(celery_stack, name)


def _suite_broker() -> Settings:
    return dataclasses.replace(load(), data_dir=TEST_DATA_DIR / "broker", broker_url_override=None)


def _kill_suite_broker() -> None:
    """SIGKILL the suite's Redis (restarted empty by ``_restart_suite_broker``)."""
    pid = broker.running(_suite_broker())
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    proof.poll("the broker to be gone", lambda: broker.running(_suite_broker()) is None, 30, 0.05)


def _restart_suite_broker() -> None:
    broker.up(_suite_broker(), port=per_checkout.SUITE_BROKER)


def _failure_reason(dagster_url: str, dagster_run_id: str) -> str:
    with psycopg.connect(dagster_url) as conn:
        (reason,) = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'PIPELINE_FAILURE'",
            (dagster_run_id,)).fetchone()
    return str(reason)


def test_a_lost_worker_host_is_reaped_by_its_lease_and_resumed_on_the_other(
        celery_stack: Settings, test_databases: TestDatabases) -> None:
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    wf = "wf-celery-lost-host"
    first = proof.launch(celery_stack, app_url, wf, "s2_before_commit", proof.PAUSE_S)
    proof.poll("s2 to start", lambda: proof._step_running(app_url, wf, "s2"), 60, 0.1)
    proof.poll("the run to register its worker", lambda: first in _workers_of(app_url, [first]), 30, 0.1)
    lost = _workers_of(app_url, [first])[first]
    # The whole worker host at once: its agent (the heartbeat), Celery and the run's child.
    stack.kill(celery_stack, [lost], signal.SIGKILL)
    try:
        proof.poll("the run group to settle", lambda: (g := proof.group(dagster_url, wf)) != [] and g[-1].settled,
                   240, 0.5)
        runs = proof.group(dagster_url, wf)
        assert [r.status for r in runs] == ["FAILURE", "SUCCESS"]
        assert proof.marks(app_url, wf) == {"s1": 1, "s2": 1}
        resumed = _workers_of(app_url, [runs[-1].run_id])[runs[-1].run_id]
        assert resumed != lost
        reason = _failure_reason(dagster_url, first)
        assert "lease" in reason and lost in reason
    finally:
        stack.up(celery_stack)  # the lost host comes back (with a new lease epoch)
    with psycopg.connect(app_url) as conn:
        (epoch,) = conn.execute("SELECT epoch FROM app.worker_leases WHERE worker = %s", (lost,)).fetchone()
    assert epoch >= 2


def _tree(pid: int) -> list[int]:
    from scripts.worker import descendants

    return [pid, *descendants(pid)]


def test_a_worker_host_back_after_its_lease_expired_cannot_finish_its_run(
        celery_stack: Settings, test_databases: TestDatabases) -> None:
    """The host is frozen (SIGSTOP, like a partition) past its lease; its run is reaped and finished
    on the other worker; then the host wakes up inside the step it was running. The fence refuses
    its commit (its agent also kills its Celery tree on finding the lease lost): one mark per step,
    and the reaped run stays failed."""
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    wf = "wf-celery-comeback"
    pause_s = 3 * celery_stack.lease_ttl_s  # still inside the step when it wakes up
    first = proof.launch(celery_stack, app_url, wf, "s2_before_commit", pause_s)
    proof.poll("s2 to start", lambda: proof._step_running(app_url, wf, "s2"), 60, 0.1)
    proof.poll("the run to register its worker", lambda: first in _workers_of(app_url, [first]), 30, 0.1)
    frozen = _workers_of(app_url, [first])[first]
    agent = stack.read_pid(celery_stack, frozen)
    assert agent is not None
    tree = _tree(agent)
    for pid in tree:
        os.kill(pid, signal.SIGSTOP)
    try:
        proof.poll("the run to be re-executed elsewhere and succeed",
                   lambda: (g := proof.group(dagster_url, wf)) != [] and g[-1].status == "SUCCESS", 120, 0.5)
    finally:
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    # Awake: it either meets the fence at commit or is killed by its agent first; then its agent
    # takes a new epoch.
    with psycopg.connect(app_url) as conn:
        proof.poll("the frozen worker to take a new lease", lambda: conn.execute(
            "SELECT epoch > %s FROM app.worker_leases WHERE worker = %s",
            (_lease_epoch(app_url, first), frozen)).fetchone()[0], 60, 0.2)
    runs = proof.group(dagster_url, wf)
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], runs
    assert proof.marks(app_url, wf) == {"s1": 1, "s2": 1}
    stack.up(celery_stack)


def _lease_epoch(app_url: str, dagster_run_id: str) -> int:
    with psycopg.connect(app_url) as conn:
        return int(conn.execute("SELECT lease_epoch FROM app.run_workers WHERE dagster_run_id = %s",
                                (dagster_run_id,)).fetchone()[0])


def _started_at(dagster_url: str, app_run_id: str) -> float:
    with psycopg.connect(dagster_url) as conn:
        (start,) = conn.execute(
            "SELECT min(r.start_time) FROM runs r JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'app/run_id' "
            "WHERE t.value = %s", (app_run_id,)).fetchone()
    return float(start)


def test_a_high_priority_run_overtakes_a_backlog(api: httpx.Client, celery_stack: Settings,
                                                 test_databases: TestDatabases) -> None:
    """A backlog of normal-priority runs (each pausing 3 s, so the backlog outlasts its submission)
    waits in the broker; an intent whose constraints say priority high, submitted after all of
    them over HTTP, starts before every backlog run still waiting in the broker then."""
    dagster_url = test_databases.dagster_url
    client = DagsterClient(celery_stack.dagster_ui_url)
    backlog = [f"wf-celery-backlog-{i}" for i in range(BACKLOG)]
    for wf in backlog:  # what routing.tags gives a normal run
        client.launch("crashdemo", crashdemo_run_config(wf, "s2_before_commit", 3.0),
                      {"app/run_id": wf, **routing.tags({})})
    urgent = api.post("/intents", json={**DEMO, "constraints": {"priority": "high"}}).json()["intentId"]
    submitted_at = time.time()
    high = api.post(f"/intents/{urgent}/run", json={}).json()["runId"]
    assert _wait_final(api, high, 120)["status"] == "succeeded"
    proof.poll("the backlog to finish", lambda: all(
        (g := proof.group(dagster_url, wf)) != [] and g[-1].settled for wf in backlog), 180, 0.5)
    assert all(proof.group(dagster_url, wf)[-1].status == "SUCCESS" for wf in backlog)
    high_start = _started_at(dagster_url, high)
    waiting = [wf for wf in backlog if _started_at(dagster_url, wf) > submitted_at]
    overtaken = [wf for wf in backlog if _started_at(dagster_url, wf) > high_start]
    # Not started when the high run was submitted: still in the broker, or reserved by a worker
    # (two workers of concurrency 1 prefetch one run each, which no priority can take back). How
    # many were still waiting depends on the machine's speed; every one beyond those two must
    # have been overtaken.
    assert len(waiting) > 2, ("the backlog drained before the high run was submitted", waiting)
    assert len(overtaken) >= len(waiting) - 2, (overtaken, waiting)


def test_a_broker_restart_under_a_running_run_fails_nothing(celery_stack: Settings,
                                                            test_databases: TestDatabases) -> None:
    """Redis SIGKILLed and restarted empty while a run executes: the run's Celery task state is
    gone, yet its worker lease is valid, so run monitoring keeps it running (the stock launcher's
    check would fail it) and it finishes once, on its first attempt."""
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    wf = "wf-celery-broker-restart"
    # Longer than two run-monitoring polls (5 s): the check runs while the state is lost.
    proof.launch(celery_stack, app_url, wf, "s2_before_commit", 12.0)
    proof.poll("s2 to start", lambda: proof._step_running(app_url, wf, "s2"), 60, 0.1)
    _kill_suite_broker()
    _restart_suite_broker()
    proof.poll("the run group to settle", lambda: (g := proof.group(dagster_url, wf)) != [] and g[-1].settled,
               120, 0.5)
    assert [r.status for r in proof.group(dagster_url, wf)] == ["SUCCESS"]
    assert proof.marks(app_url, wf) == {"s1": 1, "s2": 1}


def test_a_run_whose_process_dies_on_a_live_host_is_reaped_and_resumed(celery_stack: Settings,
                                                                       test_databases: TestDatabases) -> None:
    """The run's Celery pool child SIGKILLed while Redis is down (found by a chaos run: Celery could
    not store the task's failure, the restarted Redis had no state for it, the host's lease stayed
    valid, and the run stayed STARTED for good). The host's agent sees the process gone and the
    reaper fails the run while Redis is still down (so neither Celery's state nor the lease can
    have told); once Redis is back the retry finishes it, effects once."""
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    wf = "wf-celery-child-killed"
    first = proof.launch(celery_stack, app_url, wf, "s2_before_commit", 60.0)
    proof.poll("s2 to start", lambda: proof._step_running(app_url, wf, "s2"), 60, 0.1)
    proof.poll("the run to register its worker", lambda: first in _workers_of(app_url, [first]), 30, 0.1)
    with psycopg.connect(app_url) as conn:
        (pid,) = conn.execute("SELECT pid FROM app.run_workers WHERE dagster_run_id = %s", (first,)).fetchone()
    _kill_suite_broker()
    try:
        os.kill(pid, signal.SIGKILL)
        proof.poll("the run to be failed", lambda: proof.group(dagster_url, wf)[0].status == "FAILURE", 60, 0.2)
    finally:
        _restart_suite_broker()
    reason = _failure_reason(dagster_url, first)
    assert "seen by the host's agent" in reason, reason
    proof.poll("the run group to settle", lambda: (g := proof.group(dagster_url, wf)) != [] and g[-1].settled,
               240, 0.5)
    runs = proof.group(dagster_url, wf)
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], runs
    assert proof.marks(app_url, wf) == {"s1": 1, "s2": 1}


NETCUT_QUEUE = "netcut"


def test_a_worker_host_cut_off_from_postgres_is_reaped_and_resumed_on_another(
        celery_stack: Settings, test_databases: TestDatabases) -> None:
    """A host reaches PostgreSQL only through a proxy (``tests/tcp_cut.py``); the broker stays
    reachable. Its run, paused inside s2, is cut off by a partition that drops every packet (the
    proxy's blackhole; a refused network fails the agent's calls at once, test_worker_netcut.py).
    Its agent, bounded on every lease call, kills its Celery tree about a TTL after its last
    renewal, while still cut off; the reaper fails the run once the lease expired, and the retry
    daemon resumes it on a healthy host consuming the same queue. Back on the network, the host
    takes a new epoch; the reaped run stays failed and each step's effect happened once."""
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    wf = "wf-celery-netcut"
    with TcpCut.to_database(app_url) as net, \
            _host(celery_stack, "worker-cut", NETCUT_QUEUE, net.url(app_url), net.url(dagster_url)) as cut_dir:
        first = proof.launch(celery_stack, app_url, wf, "s2_before_commit", proof.PAUSE_S,
                             routing.tags({"queue": NETCUT_QUEUE}))
        proof.poll("s2 to start", lambda: proof._step_running(app_url, wf, "s2"), 60, 0.1)
        proof.poll("the run to register its worker", lambda: first in _workers_of(app_url, [first]), 30, 0.1)
        assert _workers_of(app_url, [first])[first] == "worker-cut"
        celery_pid = int((cut_dir / "run" / "celery.ready").read_text())
        celery_ticks = run_workers.start_ticks(celery_pid)
        # Started only now, so the run could not go to it: where the retry goes.
        with _host(celery_stack, "worker-spare", NETCUT_QUEUE, app_url, dagster_url):
            seen: dict[str, float] = {}

            def progressed() -> bool:
                runs = proof.group(dagster_url, wf)
                for what, happened in (
                        ("its Celery tree killed", run_workers.start_ticks(celery_pid) != celery_ticks),
                        ("the run failed", runs[0].status == "FAILURE"),
                        ("the retry succeeded", len(runs) > 1 and runs[-1].status == "SUCCESS")):
                    if happened:
                        seen.setdefault(what, time.monotonic() - cut_at)
                return len(seen) == 3

            net.cut(BLACKHOLE)
            cut_at = time.monotonic()
            try:
                proof.poll("the cut host's tree killed, its run failed and retried elsewhere", progressed, 180, 0.2)
            finally:
                net.restore()
            print("\nnetwork cut (blackhole) -> " + ", ".join(f"{what} {s:.1f} s" for what, s in seen.items()))
            runs = proof.group(dagster_url, wf)
            # Back on the network: a new epoch, while the reaped run stays failed (the fence).
            with psycopg.connect(app_url) as conn:
                proof.poll("the cut host to take a new lease", lambda: conn.execute(
                    "SELECT epoch > %s FROM app.worker_leases WHERE worker = 'worker-cut'",
                    (_lease_epoch(app_url, first),)).fetchone()[0], 60, 0.2)
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], runs
    assert [r.status for r in proof.group(dagster_url, wf)] == ["FAILURE", "SUCCESS"]
    assert proof.marks(app_url, wf) == {"s1": 1, "s2": 1}
    assert _workers_of(app_url, [runs[-1].run_id])[runs[-1].run_id] == "worker-spare"
    reason = _failure_reason(dagster_url, first)
    assert "lease" in reason and "worker-cut" in reason, reason


ROUTED_QUEUE = "routed"


def _run_spans(dagster_url: str, dagster_run_ids: list[str]) -> list[tuple[float, float]]:
    """(start, end) of each run, in order of start."""
    with psycopg.connect(dagster_url) as conn:
        return [(float(a), float(b)) for a, b in conn.execute(
            "SELECT start_time, end_time FROM runs WHERE run_id = ANY(%s) ORDER BY start_time",
            (dagster_run_ids,)).fetchall()]


def test_an_intent_routed_to_a_queue_runs_only_on_the_host_consuming_it(
        api: httpx.Client, celery_stack: Settings, test_databases: TestDatabases) -> None:
    """``constraints.queue`` over HTTP, end to end: one more host consumes only that queue (at
    concurrency 1, the queue's cap), the stack's two only the default one. The routed runs execute
    on that host, once each, one after the other; the default ones never there."""
    app_url, dagster_url = test_databases.app_url, test_databases.dagster_url
    with _host(celery_stack, "worker-routed", ROUTED_QUEUE, app_url, dagster_url):
        routed = api.post("/intents", json={**DEMO, "constraints": {"queue": ROUTED_QUEUE}}).json()["intentId"]
        plain = api.post("/intents", json=DEMO).json()["intentId"]
        routed_ids = [api.post(f"/intents/{routed}/run", json={}).json()["runId"] for _ in range(2)]
        plain_ids = [api.post(f"/intents/{plain}/run", json={}).json()["runId"] for _ in range(3)]
        views = [_wait_final(api, run_id, 180) for run_id in routed_ids + plain_ids]
    assert [v["status"] for v in views] == ["succeeded"] * len(views)
    for view in views:  # exactly once: one Dagster run, every step done on its first attempt
        assert len(view["dagsterRuns"]) == 1, view["dagsterRuns"]
        assert [(s["status"], s["attempts"]) for s in view["steps"]] == [("succeeded", 1)] * 3, view["steps"]
    routed_runs = [v["dagsterRuns"][0]["runId"] for v in views[:2]]
    plain_runs = [v["dagsterRuns"][0]["runId"] for v in views[2:]]
    workers = _workers_of(app_url, routed_runs + plain_runs)
    assert [workers[r] for r in routed_runs] == ["worker-routed"] * 2, workers
    assert {workers[r] for r in plain_runs} <= {"worker-1", "worker-2"}, workers
    # The queue's cap (its one host's concurrency 1): the second routed run started after the first ended.
    (_, first_end), (second_start, _) = _run_spans(dagster_url, routed_runs)
    assert second_start >= first_end
