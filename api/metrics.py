"""``GET /metrics``: Prometheus' text exposition format, through the official client.

Two kinds of figures, each documented in the README's metrics table:

- the API's own requests (``harness_http_*``): counted by an ASGI middleware, per route template
  (``/runs/{run_id}``, never the raw path), method and status; they live in this process and
  restart at zero with it, as Prometheus counters may;
- everything about runs, read from the rows at scrape time (``harness_runs``, ``harness_run_*``,
  ``harness_sandbox_*``, ``harness_oc_*``; pipelines/store/metrics.py), and the warm pool's
  queue depth and running count, asked of the pool over its socket (``harness_pool_*``).

A scrape whose database is down still answers 200 with the request metrics and
``harness_metrics_rows_up 0``: the scrape succeeded, the rows could not be read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api.deps import AppState
from pipelines.launcher.protocol import PoolUnreachable, request
from pipelines.orchestration import dagster_runs
from pipelines.store import metrics as rows

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Request latency buckets (seconds): routes answer in milliseconds; long-polls wait up to 30 s.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POOL_TIMEOUT_S = 0.5


def _histogram(name: str, doc: str, label: str, by: dict[str, rows.Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, h in by.items():
        buckets = [(repr(float(b)), n) for b, n in h.buckets] + [("+Inf", h.count)]
        family.add_metric([value], buckets, h.total)
    return family


class RowCollector(Collector):
    """Collected at every scrape from the app and Dagster databases (and the pool's ping)."""

    def __init__(self, state: AppState):
        self.state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("harness_metrics_rows_up", "1 when this scrape could read the run rows, else 0")
        try:
            families = list(self._from_rows())
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("metrics: rows unreadable: %s", exc)
            families = []
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families
        yield from self._pool()

    def _from_rows(self) -> Iterator[Metric]:
        with self.state.app_pool.connection() as conn:
            by_status = rows.runs_by_status(conn)
            settle = rows.settle_seconds(conn)
            retries = rows.retries(conn)
            exits = rows.sandbox_exit_codes(conn)
            oc_latency = rows.oc_latency_seconds(conn)
            tokens = rows.oc_tokens(conn)
        with self.state.dagster_pool.connection() as dconn:
            reaped = dagster_runs.reaped_counts(dconn)
        runs = GaugeMetricFamily("harness_runs", "App runs by status as last observed", labels=["status"])
        for status, n in by_status.items():
            runs.add_metric([status], n)
        yield runs
        yield _histogram("harness_run_settle_seconds", "Submit (row created) to settled (final status stored)",
                         "status", settle)
        yield CounterMetricFamily("harness_run_retries", "Dagster runs beyond each app run's first "
                                  "(retries and re-executions)", value=retries)
        reaped_family = CounterMetricFamily("harness_dagster_runs_reaped", "Dagster runs failed because their "
                                            "worker was gone, by who noticed", labels=["by"])
        for by, n in reaped.items():
            reaped_family.add_metric([by], n)
        yield reaped_family
        commands = CounterMetricFamily("harness_sandbox_commands", "Sandbox commands of committed sandbox steps "
                                       "by exit code", labels=["exit_code"])
        for code, n in exits.items():
            commands.add_metric([str(code)], n)
        yield commands
        yield _histogram("harness_oc_latency_seconds", "OC provider latency of committed OC steps "
                         "(replay: the recorded call's)", "mode", oc_latency)
        token_family = CounterMetricFamily("harness_oc_tokens", "OC tokens of committed OC steps",
                                           labels=["mode", "kind"])
        for (mode, kind), n in tokens.items():
            token_family.add_metric([mode, kind], n)
        yield token_family

    def _pool(self) -> Iterator[Metric]:
        settings = self.state.settings
        up = GaugeMetricFamily("harness_pool_up", "1 when the warm pool answered its ping (warm launcher only)")
        families = []
        if settings.run_launcher == "warm":
            try:
                reply: dict[str, Any] = request(str(settings.pool_socket), {"op": "ping"}, POOL_TIMEOUT_S)
            except (PoolUnreachable, ValueError):
                reply = {}
            if reply:
                for name, doc, value in (
                        ("harness_pool_running", "Run workers the warm pool is running", len(reply.get("running", []))),
                        ("harness_pool_queued", "Runs waiting in the warm pool's own queue", len(reply.get("queued", []))),
                        ("harness_pool_max_running", "The warm pool's cap on running workers",
                         int(reply.get("max_running", 0)))):
                    family = GaugeMetricFamily(name, doc)
                    family.add_metric([], value)
                    families.append(family)
            up.add_metric([], 1 if reply.get("ok") else 0)
        else:
            up.add_metric([], 0)
        yield up
        yield from families


class Metrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, state: AppState):
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("harness_http_requests", "HTTP requests the API answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("harness_http_request_duration_seconds", "Time to answer, by route and status",
                                 ["method", "route", "status"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.registry.register(RowCollector(state))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: every HTTP request counted and timed under its route template."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope.get("method", "?"), template, status, time.perf_counter() - started)
