"""OpenTelemetry traces of a run, end to end: one trace per app run, rooted at the request that
accepted it (or joined to the caller's W3C ``traceparent``).

    POST /intents/{id}/run (FastAPI server span)
      └ harness.launch                    the outbox launch (API, or the reconciler later)
          └ harness.dagster.run           one per Dagster run of the group (retries, re-executions),
              │                           linked to the attempt before it
              └ harness.op <name>         each op
                  ├ POST (httpx)          the OC provider call
                  ├ harness.sandbox.command
                  └ harness.checkpoint.commit → its Postgres statements (psycopg)

Context crosses into Dagster as the run tag ``otel/traceparent`` (the launch span's context),
which Dagster's retries and re-executions copy. The app row keeps the request's traceparent
(``app.runs.traceparent``) so the reconciler launches into the same trace.

A Dagster run's span has an id derived from its Dagster run id, so the next attempt can link to
it without anyone writing it down; a worker that was killed never ends its run span, so the next
attempt's worker records it from the run's rows (``start_run``).

Off unless ``pipelines.settings`` says an OTLP endpoint is configured; then nothing here imports
the SDK and every helper is a no-op. Only library code of ours uses this module; the SDK reads
the rest of the standard ``OTEL_*`` variables itself. Workers flush before they exit
(``flush``): a forked run worker ends in ``os._exit``, which skips the SDK's atexit flush.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines import settings as _settings

log = logging.getLogger(__name__)

TRACEPARENT_TAG = "otel/traceparent"
RUN_SPAN = "harness.dagster.run"
LAUNCH_SPAN = "harness.launch"
OP_SPAN = "harness.op"
SANDBOX_SPAN = "harness.sandbox.command"
COMMIT_SPAN = "harness.checkpoint.commit"
# /healthz and /metrics are polled; a trace each would drown the runs' traces.
EXCLUDED_URLS = "healthz,metrics"

_decided: bool | None = None
_provider: Any = None  # the SDK's TracerProvider once set up
_service: str | None = None
_next_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("harness_next_span_id", default=None)


@dataclass
class _RunState:
    span: Any
    context: Any
    failed: bool = False


_run: _RunState | None = None  # the run span of this process (a run worker runs one run)


def enabled() -> bool:
    """Tracing configured (decided once per process, from settings)."""
    global _decided
    if _decided is None:
        _decided = _settings.load().tracing
    return _decided


def active() -> bool:
    """Set up in this process: spans are recorded and exported."""
    return _provider is not None


def span_id_of(dagster_run_id: str) -> int:
    """The span id of a Dagster run's span: derived from its id, never 0."""
    return int.from_bytes(hashlib.sha256(dagster_run_id.encode()).digest()[:8], "big") or 1


def setup(service: str) -> bool:
    """Install the SDK's tracer provider exporting over OTLP/HTTP, once per process; False (and
    nothing imported) when tracing is off.

    Never in the warm pool's parent: its batch processor starts a thread, and the pool refuses
    to fork once it has one. Workers set it up after the fork."""
    global _provider, _service
    if _provider is not None:
        return True
    if not enabled():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    class Ids(RandomIdGenerator):
        def generate_span_id(self) -> int:
            chosen = _next_span_id.get()
            return chosen if chosen is not None else super().generate_span_id()

    class Roots(Sampler):
        """A trace starts only at a request the API serves or at a span of ours: a Postgres
        statement outside any span (a sensor's poll, a worker's bookkeeping) starts none."""

        def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                          attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
            keep = name.startswith("harness.") or (kind is not None and kind == trace.SpanKind.SERVER)
            return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, attributes)

        def get_description(self) -> str:
            return "HarnessRoots"

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, are merged in by Resource.create.
    resource = Resource.create({"service.name": f"intent-harness-{service}"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(Roots()), id_generator=Ids())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider, _service = provider, service
    return True


def preload() -> None:
    """Import the SDK, the exporter and the worker's instrumentations (tracing on), creating
    nothing: the warm pool's parent calls this once, so its forked workers do not each pay ~60 ms
    of imports. Starts no thread (the pool forks only while it has one)."""
    if not enabled():
        return
    import opentelemetry.exporter.http.transport._requests  # noqa: F401
    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    import opentelemetry.instrumentation.httpx  # noqa: F401
    import opentelemetry.instrumentation.psycopg  # noqa: F401
    import opentelemetry.sdk.resources  # noqa: F401
    import opentelemetry.sdk.trace.export  # noqa: F401
    import opentelemetry.sdk.trace.sampling  # noqa: F401
    import opentelemetry.trace.propagation.tracecontext  # noqa: F401
    import requests  # noqa: F401  (the exporter's transport imports it lazily, ~50 ms)


def flush(timeout_ms: int = 5000) -> bool:
    """Export every ended span now (a worker calls this before it exits); True when off."""
    if _provider is None:
        return True
    try:
        return bool(_provider.force_flush(timeout_ms))
    except Exception:  # tracing must never fail a run
        log.exception("flushing spans failed")
        return False


def instrument_worker() -> None:
    """Spans for every psycopg statement and httpx request of a run worker (after ``setup``)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    if not PsycopgInstrumentor().is_instrumented_by_opentelemetry:
        PsycopgInstrumentor().instrument()
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()


def instrument_app(app: Any) -> None:
    """Server spans for the API (after ``setup``); an incoming W3C traceparent is joined."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=EXCLUDED_URLS)


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("intent-harness")


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None (tracing off, or no span)."""
    if _provider is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def annotate(attributes: Mapping[str, Any]) -> None:
    """Attributes on the current span (the request's, in a route), when tracing is active."""
    if _provider is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(dict(attributes))


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, else of this worker's run span; None when
    tracing is off or there is neither (for log lines: pipelines/logs.py)."""
    if _provider is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid and _run is not None:
        context = _run.span.get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _extract(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent} if traceparent else {})


@contextmanager
def launch_span(traceparent: str | None, attributes: Mapping[str, Any]) -> Iterator[str | None]:
    """The launch of an app run, a child of the request that accepted it (``traceparent`` from
    its row), wherever it happens; yields the traceparent to tag the Dagster run with."""
    if traceparent is None or not setup("launcher"):
        yield None
        return
    with _tracer().start_as_current_span(LAUNCH_SPAN, context=_extract(traceparent), attributes=dict(attributes)):
        yield current_traceparent()


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A child of the current span when tracing is active (else nothing is made)."""
    if _provider is None:
        yield None
        return
    with _tracer().start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current


def _span_context(traceparent: str, span_id: int) -> Any:
    from opentelemetry import trace

    parent = trace.get_current_span(_extract(traceparent)).get_span_context()
    return trace.SpanContext(parent.trace_id, span_id, is_remote=True,
                             trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))


def _start_with_id(name: str, span_id: int, **kwargs: Any) -> Any:
    token = _next_span_id.set(span_id)
    try:
        return _tracer().start_span(name, **kwargs)
    finally:
        _next_span_id.reset(token)


@dataclass(frozen=True)
class Attempt:
    """What a run worker knows of its Dagster run: from the run and its rows."""

    dagster_run_id: str
    job_name: str
    tags: Mapping[str, str]
    parent_run_id: str | None
    app_run_id: str | None


@dataclass(frozen=True)
class LostAttempt:
    """The attempt before this one, whose worker died before it ended its span (from rows)."""

    dagster_run_id: str
    parent_run_id: str | None
    start_ns: int
    end_ns: int
    status: str


def start_run(attempt: Attempt, lost: Sequence[LostAttempt] = ()) -> bool:
    """Start this worker's run span (child of the launch, linked to the attempt before it), after
    recording the spans of attempts whose workers were killed. False when the run is not traced."""
    global _run
    traceparent = attempt.tags.get(TRACEPARENT_TAG)
    if traceparent is None or not setup("run-worker"):
        return False
    from opentelemetry import trace
    from opentelemetry.trace import Link, Status, StatusCode

    parent = _extract(traceparent)

    def links(parent_run_id: str | None) -> list[Link]:
        return [Link(_span_context(traceparent, span_id_of(parent_run_id)))] if parent_run_id else []

    for old in lost:
        dead = _start_with_id(RUN_SPAN, span_id_of(old.dagster_run_id), context=parent,
                              links=links(old.parent_run_id), start_time=old.start_ns,
                              attributes={"dagster.run_id": old.dagster_run_id, "dagster.job": attempt.job_name,
                                          "dagster.status": old.status, "app.run_id": attempt.app_run_id or "",
                                          "harness.recorded_from_rows": True})
        dead.set_status(Status(StatusCode.ERROR, "the run worker died before the run ended"))
        dead.end(end_time=max(old.end_ns, old.start_ns))
    current = _start_with_id(RUN_SPAN, span_id_of(attempt.dagster_run_id), context=parent,
                             links=links(attempt.parent_run_id),
                             attributes={"dagster.run_id": attempt.dagster_run_id, "dagster.job": attempt.job_name,
                                         "app.run_id": attempt.app_run_id or "",
                                         "dagster.parent_run_id": attempt.parent_run_id or ""})
    _run = _RunState(current, trace.set_span_in_context(current))
    return True


def end_run() -> bool:
    """End this worker's run span; True when there was one. Not flushed here, off the run's
    critical path: a warm worker flushes in its exit path (``pool.exit_worker``), a stock one in
    the SDK's atexit shutdown."""
    global _run
    if _run is None:
        return False
    from opentelemetry.trace import Status, StatusCode

    state, _run = _run, None
    if state.failed:
        state.span.set_status(Status(StatusCode.ERROR, "an op failed"))
    state.span.end()
    return True


@contextmanager
def op_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """An op's span under this worker's run span (nothing when the run is not traced); a failing
    op marks the run span failed too."""
    if _run is None:
        yield None
        return
    try:
        with _tracer().start_as_current_span(f"{OP_SPAN} {name}", context=_run.context,
                                             attributes=dict(attributes)) as current:
            yield current
    except BaseException:
        if _run is not None:
            _run.failed = True
        raise
