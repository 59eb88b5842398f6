"""One run, one trace, through the real stack: spans exported over OTLP/HTTP by every process (the
API, the run workers) to the in-tree receiver, with the run worker SIGKILLed mid-op once.

The OC provider is the scripted chat server in live mode, so the kill lands inside a real
provider call: the first request is held open, the worker that sent it is killed, Dagster retries
the run, and the retry's worker asks again and finishes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines import telemetry
from pipelines.orchestration import lifecycle
from pipelines.settings import Settings
from pipelines.store import run_workers
from scripts import stack
from scripts.otlp_receiver import Receiver, Span
from scripts.polling import poll
from tests import per_checkout
from tests.conftest import TestDatabases
from tests.integration.test_stack_e2e import boot
from tests.oc_fake_server import ChatServer, Reply, ok
from tests.oc_samples import PLAN

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
TWO_COMMANDS = {**PLAN, "commands": [{"name": "hello", "run": "echo hello", "timeoutMs": 5000},
                                     {"name": "bye", "run": "echo bye", "timeoutMs": 5000}]}
OPS = ("oc_plan", "sandbox_run", "persist")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def oc_server() -> Iterator[ChatServer]:
    # The first call is held (the worker is killed during it); the retry's call gets the plan.
    with ChatServer([Reply(body={}, delay_s=300), ok(TWO_COMMANDS)]) as server:
        yield server


@pytest.fixture(scope="module")
def traced_stack(test_databases: TestDatabases, receiver: Receiver, oc_server: ChatServer) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in receiver.env().items():
            mp.setenv(name, value)
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # spans leave each process within 0.2 s
        mp.setenv("OC_BASE_URL", oc_server.base_url)
        mp.setenv("OC_MODEL", "fake-model")
        mp.setenv("HARNESS_OC_MODES", "replay,live")
        yield from boot(test_databases, "warm", per_checkout.TRACED)


@pytest.fixture
def api(traced_stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{traced_stack.api_port}", timeout=40) as client:
        yield client


def _dagster_runs(dagster_url: str, app_run_id: str) -> list[str]:
    with psycopg.connect(dagster_url) as conn:
        rows = conn.execute("SELECT r.run_id FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                            "WHERE t.key = 'app/run_id' AND t.value = %s ORDER BY r.id", (app_run_id,)).fetchall()
    return [r[0] for r in rows]


def _kill_worker(app_url: str, dagster_run_id: str) -> None:
    with psycopg.connect(app_url) as conn:
        found = run_workers.lookup(conn, dagster_run_id)
    assert found is not None, f"run {dagster_run_id} has no registered worker"
    _, pid, ticks = found
    assert run_workers.is_alive(pid, ticks), f"worker pid {pid} is gone before the kill"
    os.kill(pid, signal.SIGKILL)
    poll("the killed worker to be gone", lambda: run_workers.start_ticks(pid) is None, 30)


def _wait_final(api: httpx.Client, run_id: str, deadline_s: float) -> dict:
    view: dict = {}

    def final() -> bool:
        nonlocal view
        view = api.get(f"/runs/{run_id}", params={"wait": 10}).json()
        return view["status"] in lifecycle.FINAL

    poll(f"run {run_id} to finish", final, deadline_s, 0)
    return view


def _hex(span_id: int) -> str:
    return f"{span_id:016x}"


def test_one_trace_from_the_request_through_a_killed_attempt_to_every_op(
        api: httpx.Client, traced_stack: Settings, test_databases: TestDatabases, receiver: Receiver,
        oc_server: ChatServer) -> None:
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    accepted = api.post(f"/intents/{intent_id}/run", json={"traceId": "handoff-traced", "oc": {"mode": "live"}})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["runId"]

    poll("the first attempt's OC call to reach the provider", lambda: len(oc_server.requests) >= 1, 120, 0.05)
    (first,) = _dagster_runs(test_databases.dagster_url, run_id)
    _kill_worker(test_databases.app_url, first)

    view = _wait_final(api, run_id, 180)
    assert view["status"] == "succeeded", view
    assert len(oc_server.requests) == 2 and oc_server.problems == []
    first_again, second = [r["runId"] for r in view["dagsterRuns"]]
    assert first_again == first
    # Tracing changes nothing the caller sees: the runbook's traceId is what it sent.
    assert view["traceId"] == "handoff-traced"

    run_span_ids = {_hex(telemetry.span_id_of(first)), _hex(telemetry.span_id_of(second))}

    def arrived() -> dict[str, Span]:
        return {s.span_id: s for s in receiver.snapshot()}

    def complete() -> bool:
        spans = arrived().values()
        ops = {s.name for s in spans if s.name.startswith(telemetry.OP_SPAN) and s.attributes.get("app.run_id") == run_id
               and s.attributes.get("dagster.run_id") == second}
        return run_span_ids <= {s.span_id for s in spans} and len(ops) == 3

    poll("the run's spans at the receiver", complete, 60, 0.2)
    spans = arrived()
    assert receiver.errors == []

    # The request is the root; everything of this run is in its trace.
    (request,) = [s for s in spans.values() if s.kind == "server" and s.attributes.get("app.run_id") == run_id]
    assert request.parent_span_id is None and request.name == "POST /intents/{intent_id}/run"
    assert request.attributes["app.trace_id"] == "handoff-traced"
    trace = {sid: s for sid, s in spans.items() if s.trace_id == request.trace_id}
    assert [s for s in spans.values() if s.attributes.get("app.run_id") == run_id and s.span_id not in trace] == []

    def children(parent: Span, name: str | None = None) -> list[Span]:
        return sorted((s for s in trace.values() if s.parent_span_id == parent.span_id
                       and (name is None or s.name == name)), key=lambda s: s.start_ns)

    (launch,) = children(request, telemetry.LAUNCH_SPAN)
    assert launch.attributes["harness.launched_by"] == "api" and launch.attributes["app.trace_id"] == "handoff-traced"

    # Both attempts under the launch; the killed one recorded from rows, the retry linked to it.
    attempts = {s.attributes["dagster.run_id"]: s for s in children(launch, telemetry.RUN_SPAN)}
    assert set(attempts) == {first, second}
    killed, retry = attempts[first], attempts[second]
    assert killed.span_id == _hex(telemetry.span_id_of(first)) and killed.status == "error"
    assert killed.attributes["harness.recorded_from_rows"] is True
    assert retry.span_id == _hex(telemetry.span_id_of(second)) and retry.status != "error"
    assert retry.links == ((request.trace_id, killed.span_id),)
    assert retry.attributes["dagster.parent_run_id"] == first

    # Every op of the successful attempt, under its run span, in order.
    ops = children(retry)
    assert [s.name for s in ops] == [f"{telemetry.OP_SPAN} {op}" for op in OPS]
    oc_op, sandbox_op, persist_op = ops
    assert oc_op.attributes["harness.step.reused"] is False

    # The OC provider call (httpx) inside the OC op, to the scripted server.
    (oc_call,) = [s for s in children(oc_op) if s.kind == "client" and s.name.startswith("POST")]
    assert str(oc_server.base_url.rsplit(":", 1)[1].split("/")[0]) in str(oc_call.attributes.get("url.full", "")
                                                                          or oc_call.attributes.get("http.url", ""))

    # Each sandbox command inside the sandbox op.
    commands = children(sandbox_op, telemetry.SANDBOX_SPAN)
    assert [(c.attributes["harness.command"], c.attributes["harness.exit_code"]) for c in commands] == [
        ("hello", 0), ("bye", 0)]

    # Each op's checkpoint commit, with its Postgres statements (psycopg) inside it.
    for op in ops:
        (commit,) = children(op, telemetry.COMMIT_SPAN)
        statements = children(commit)
        assert statements and all(s.kind == "client" for s in statements), (op.name, statements)
        assert any("UPDATE" in s.name or "UPDATE" in str(s.attributes.get("db.statement", "")) for s in statements)
    assert persist_op.end_ns <= retry.end_ns

    # The same story in /metrics, read from the rows: a retry, a dead worker reaped (by the pool,
    # or by the reaper sensor if it looked first), two sandbox commands that exited 0, the live OC
    # call's tokens; the pool answers its ping (the retry's worker may still be exiting).
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(api.get("/metrics").text) for s in f.samples}
    assert metrics[("harness_pool_up", ())] == 1 and metrics[("harness_pool_running", ())] in (0, 1), metrics
    assert metrics[("harness_run_retries_total", ())] >= 1, metrics
    assert sum(metrics[("harness_dagster_runs_reaped_total", (("by", by),))] for by in ("pool", "reaper")) >= 1, metrics
    assert metrics[("harness_sandbox_commands_total", (("exit_code", "0"),))] >= 2
    assert metrics[("harness_oc_tokens_total", (("kind", "total"), ("mode", "live")))] >= 200

    # grep run_… .data/log/*: the lines of both workers (the pool's log), as JSON with the run's
    # ids; the retry's lines carry its trace and span ids. (Dagster's own processes print theirs
    # in its text format: pipelines/logs.py.)
    lines = [line for path in sorted(traced_stack.log_dir.glob("*.log"))
             for line in path.read_text(errors="replace").splitlines() if run_id in line and line.startswith("{")]
    docs = [json.loads(line) for line in lines]
    assert {d["dagster_run_id"] for d in docs if d.get("service") == "run-worker"} == {first, second}, lines[:5]
    assert all(d["app_run_id"] == run_id for d in docs if d.get("service") == "run-worker")
    traced = [d for d in docs if d.get("dagster_run_id") == second and d.get("step") == "oc_plan"]
    assert traced and all(d["trace_id"] == request.trace_id for d in traced), traced[:3]
    assert any(d.get("span_id") == oc_op.span_id for d in traced), traced


def test_a_callers_traceparent_is_joined(api: httpx.Client, traced_stack: Settings, receiver: Receiver) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    accepted = api.post(f"/intents/{intent_id}/run", json={},
                        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
    run_id = accepted.json()["runId"]
    view = _wait_final(api, run_id, 120)
    assert view["status"] == "succeeded"
    (dagster_run,) = [r["runId"] for r in view["dagsterRuns"]]

    def persisted() -> bool:
        return any(s.name == f"{telemetry.OP_SPAN} persist" and s.attributes.get("app.run_id") == run_id
                   for s in receiver.snapshot())

    poll("the run's last op span at the receiver", persisted, 60, 0.2)
    spans = [s for s in receiver.snapshot() if s.trace_id == caller_trace]
    (request,) = [s for s in spans if s.kind == "server" and s.attributes.get("app.run_id") == run_id]
    assert request.parent_span_id == caller_span
    (run_span,) = [s for s in spans if s.name == telemetry.RUN_SPAN]
    assert run_span.attributes["dagster.run_id"] == dagster_run and run_span.links == ()


def test_the_reconciler_launches_into_the_requests_trace(api: httpx.Client, traced_stack: Settings,
                                                         receiver: Receiver) -> None:
    """The API could not launch (webserver down): the outbox reconciler's launch span, made in the
    code server from the row's traceparent, joins the request's trace, and so does the run."""
    stack.stop(traced_stack, "webserver")
    try:
        intent_id = api.post("/intents", json=DEMO).json()["intentId"]
        run_id = api.post(f"/intents/{intent_id}/run", json={}).json()["runId"]
        view = _wait_final(api, run_id, 120)
    finally:
        stack.up(traced_stack)
    assert view["status"] == "succeeded"

    def run_span_arrived() -> bool:
        return any(s.name == telemetry.RUN_SPAN and s.attributes.get("app.run_id") == run_id
                   for s in receiver.snapshot())

    poll("the reconciled run's span at the receiver", run_span_arrived, 60, 0.2)
    spans = {s.span_id: s for s in receiver.snapshot()}
    (request,) = [s for s in spans.values() if s.kind == "server" and s.attributes.get("app.run_id") == run_id]
    (run_span,) = [s for s in spans.values() if s.name == telemetry.RUN_SPAN and s.attributes.get("app.run_id") == run_id]
    launch = spans[run_span.parent_span_id or ""]
    assert launch.name == telemetry.LAUNCH_SPAN and launch.attributes["harness.launched_by"] == "reconciler"
    assert launch.parent_span_id == request.span_id and launch.trace_id == run_span.trace_id == request.trace_id


@pytest.fixture(scope="module")
def traced_stock_stack(test_databases: TestDatabases, receiver: Receiver, traced_stack: Settings) -> Iterator[Settings]:
    """Dagster's stock launcher: each run worker is a fresh `dagster api execute_run` process."""
    stack.down(traced_stack)  # one stack at a time on 2 cores (and the data dirs differ anyway)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in receiver.env().items():
            mp.setenv(name, value)
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
        yield from boot(test_databases, "stock", per_checkout.E2E_STOCK)


def test_a_stock_launcher_worker_exports_its_run_and_ops(traced_stock_stack: Settings, receiver: Receiver) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{traced_stock_stack.api_port}", timeout=40) as api:
        intent_id = api.post("/intents", json=DEMO).json()["intentId"]
        run_id = api.post(f"/intents/{intent_id}/run", json={}).json()["runId"]
        view = _wait_final(api, run_id, 180)
    assert view["status"] == "succeeded"

    def ops_arrived() -> bool:
        return len([s for s in receiver.snapshot() if s.name.startswith(telemetry.OP_SPAN)
                    and s.attributes.get("app.run_id") == run_id]) == 3

    poll("the stock worker's op spans at the receiver", ops_arrived, 60, 0.2)
    spans = {s.span_id: s for s in receiver.snapshot()}
    (request,) = [s for s in spans.values() if s.kind == "server" and s.attributes.get("app.run_id") == run_id]
    (run_span,) = [s for s in spans.values() if s.name == telemetry.RUN_SPAN and s.attributes.get("app.run_id") == run_id]
    assert spans[run_span.parent_span_id or ""].parent_span_id == request.span_id
    assert run_span.trace_id == request.trace_id and run_span.service == "intent-harness-run-worker"
    ops = sorted((s for s in spans.values() if s.parent_span_id == run_span.span_id), key=lambda s: s.start_ns)
    assert [s.name for s in ops] == [f"{telemetry.OP_SPAN} {op}" for op in OPS]
