"""Tracing's contract without a stack: off is nothing at all, a forked worker flushes before its
``os._exit`` (else its spans are lost), span ids of Dagster runs are derived, the receiver decodes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterRunStatus

from pipelines import telemetry
from pipelines.launcher import pool as pool_mod
from pipelines.launcher.version import code_version
from pipelines.settings import REPO_ROOT, load
from scripts.otlp_receiver import Receiver

OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
             "OTEL_TRACES_EXPORTER")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def fresh_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process decides again, and has set nothing up (a forked child sets up its own)."""
    monkeypatch.setattr(telemetry, "_decided", None)
    monkeypatch.setattr(telemetry, "_provider", None)
    monkeypatch.setattr(telemetry, "_run", None)
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def test_tracing_is_on_only_with_an_endpoint_and_not_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    assert load().tracing is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert load().tracing is True
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert load().tracing is False
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert load().tracing is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        load()


def test_off_imports_no_sdk_and_changes_no_tags(fresh_telemetry: None) -> None:
    """Tracing off: the API, the job and a launch run as before, and the SDK is never imported."""
    code = (
        "import sys\n"
        "from api.main import create_app\n"
        "from pipelines import telemetry\n"
        "import pipelines.definitions\n"
        "from pipelines.launcher import pool\n"
        "assert telemetry.setup('api') is False and telemetry.flush() is True\n"
        "with telemetry.launch_span('00-' + '1' * 32 + '-' + '2' * 16 + '-01', {}) as tp:\n"
        "    assert tp is None\n"
        "with telemetry.span('harness.x') as s, telemetry.op_span('op', {}) as o:\n"
        "    assert s is None and o is None\n"
        "assert telemetry.current_traceparent() is None\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter',"
        " 'opentelemetry.instrumentation'))]\n"
        "assert loaded == [], loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


class _Run:
    run_id = "run-flush"
    job_name = "hello_job"
    status = DagsterRunStatus.STARTING
    op_selection = asset_selection = asset_check_selection = None
    job_snapshot_id = "snap"
    tags: dict[str, str] = {}


class _Instance:
    def optimize_for_webserver(self, **_kwargs: Any) -> None:
        pass

    def get_run_by_id(self, _run_id: str) -> _Run:
        return _Run()

    def add_run_tags(self, _run_id: str, _tags: dict[str, str]) -> None:
        pass

    def report_run_failed(self, *_args: Any) -> None:
        raise AssertionError("the fake run must not fail")


def _fork_worker_that_traces(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> int:
    """Fork the pool's real worker path (``Pool._child``) around a run body that records one
    span; returns the worker's exit code. The batch processor's delay is ten minutes, so only an
    explicit flush can deliver that span before the worker's ``os._exit``."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")

    def body(run_id: str, *_args: Any, **_kwargs: Any) -> int:
        assert telemetry.setup("run-worker")
        with telemetry.span("harness.test.worker", {"dagster.run_id": run_id}):
            pass
        return 0

    monkeypatch.setattr(pool_mod, "execute_run_body", body)
    pool = pool_mod.Pool(instance=_Instance(), socket_path=REPO_ROOT / "unused.sock",  # type: ignore[arg-type]
                         spool_dir=REPO_ROOT / "unused", max_running=1, version=code_version(), snapshots={})
    pid = os.fork()
    if pid == 0:  # the worker: never returns (os._exit)
        pool._child(_Run.run_id)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_forked_worker_flushes_its_spans_before_exit(monkeypatch: pytest.MonkeyPatch, receiver: Receiver,
                                                     fresh_telemetry: None) -> None:
    assert _fork_worker_that_traces(monkeypatch, receiver) == 0
    # The worker flushed synchronously before it exited: the span is here already, no waiting.
    names = [s.name for s in receiver.snapshot()]
    assert names == ["harness.test.worker"], (names, receiver.errors)
    (span,) = receiver.snapshot()
    assert span.service == "intent-harness-run-worker" and span.attributes["dagster.run_id"] == "run-flush"


def test_without_the_flush_the_forked_worker_loses_its_spans(monkeypatch: pytest.MonkeyPatch,
                                                             receiver: Receiver, fresh_telemetry: None) -> None:
    """The control: the same worker with the flush taken out exports nothing (what the trial saw)."""
    monkeypatch.setattr(telemetry, "flush", lambda timeout_ms=5000: True)
    assert _fork_worker_that_traces(monkeypatch, receiver) == 0
    assert receiver.snapshot() == [] and receiver.requests == 0


def test_preload_imports_the_sdk_without_a_thread(receiver: Receiver) -> None:
    """What the warm pool's parent calls before forking: the SDK imported, no provider, one thread."""
    code = (
        "import os, sys\n"
        "from pipelines import telemetry\n"
        "telemetry.preload()\n"
        "assert 'opentelemetry.sdk.trace.export' in sys.modules\n"
        "assert 'opentelemetry.instrumentation.psycopg' in sys.modules\n"
        "assert not telemetry.active()\n"
        "assert len(os.listdir('/proc/self/task')) == 1, os.listdir('/proc/self/task')\n"
    )
    env = {**{k: v for k, v in os.environ.items() if k not in OTEL_VARS}, **receiver.env()}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_dagster_run_span_ids_are_derived_and_stable() -> None:
    a, b = telemetry.span_id_of("run-a"), telemetry.span_id_of("run-b")
    assert a == telemetry.span_id_of("run-a") and a != b
    assert 0 < a < 2**64


def test_receiver_decodes_what_the_sdk_exports(receiver: Receiver) -> None:
    """The official exporter into the in-tree receiver: names, parents, links and attributes survive."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")))
    tracer = provider.get_tracer("unit")
    with tracer.start_as_current_span("parent") as parent:
        link = trace.Link(parent.get_span_context())
        with tracer.start_as_current_span("child", links=[link], attributes={"n": 3, "ok": True}):
            pass
    provider.shutdown()
    spans = {s.name: s for s in receiver.snapshot()}
    assert set(spans) == {"parent", "child"}
    assert spans["child"].parent_span_id == spans["parent"].span_id
    assert spans["child"].trace_id == spans["parent"].trace_id
    assert spans["child"].links == ((spans["parent"].trace_id, spans["parent"].span_id),)
    assert spans["child"].attributes == {"n": 3, "ok": True} and spans["parent"].service == "unit"
