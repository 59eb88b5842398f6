"""``GET /metrics`` scraped over real HTTP and parsed with the official client's parser: request
counts and latency by route template, and run metrics that follow the rows.

The suite's databases are shared, so every run figure is asserted as the change between two
scrapes around rows this test writes itself.
"""

from __future__ import annotations

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb

from pipelines import clock
from pipelines.store import repo
from tests.api_server import ServedApp
from tests.conftest import TestDatabases

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}


def scrape(client: httpx.Client) -> Samples:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_every_documented_family_is_exposed(client: httpx.Client) -> None:
    client.get("/healthz")
    names = {name for name, _ in scrape(client)}
    for family in ("harness_http_requests_total", "harness_http_request_duration_seconds_bucket",
                   "harness_metrics_rows_up", "harness_runs", "harness_run_settle_seconds_count",
                   "harness_run_retries_total", "harness_dagster_runs_reaped_total", "harness_pool_up"):
        assert family in names, family


def test_requests_are_counted_by_route_template_and_status(client: httpx.Client) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/runs/run_{'0' * 32}").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    after = scrape(client)
    labels = {"method": "GET", "route": "/runs/{run_id}", "status": "404"}
    assert value(after, "harness_http_requests_total", **labels) - value(
        before, "harness_http_requests_total", **labels) == 3
    assert value(after, "harness_http_request_duration_seconds_count", **labels) - value(
        before, "harness_http_request_duration_seconds_count", **labels) == 3
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "harness_http_requests_total", **unmatched) - value(
        before, "harness_http_requests_total", **unmatched) == 1
    assert not [k for k in after if "no/such" in str(k)]  # raw paths never become labels


def _run_with_rows(conn: psycopg.Connection, *, status: str, attempts: int, settle_s: float,
                   exit_codes: list[int], tokens: int) -> str:
    intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), body=DEMO, idempotency_key=None)
    run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id=None,
                                options={}, idempotency_key=None)
    conn.execute("UPDATE app.runs SET status = %s, attempts = %s, status_at = created_at + make_interval(secs => %s) "
                 "WHERE run_id = %s", (status, attempts, settle_s, run_id))
    meta = {"mode": "live", "latencyMs": 1500,
            "usage": {"promptTokens": tokens, "completionTokens": tokens, "totalTokens": 2 * tokens}}
    results = [{"name": f"c{i}", "result": {"exitCode": code}} for i, code in enumerate(exit_codes)]
    for step, output in (("oc", {"meta": meta}), ("sandbox", {"results": results})):
        conn.execute("INSERT INTO app.run_steps (run_id, step, status, attempts, dagster_run_id, started_at, "
                     "finished_at, output) VALUES (%s, %s, 'succeeded', 1, 'd', %s, %s, %s)",
                     (run_id, step, clock.now(), clock.now(), Jsonb(output)))
    return run_id


def test_run_metrics_follow_the_rows(client: httpx.Client, test_databases: TestDatabases) -> None:
    before = scrape(client)
    with psycopg.connect(test_databases.app_url, autocommit=True) as conn:
        _run_with_rows(conn, status="succeeded", attempts=2, settle_s=1.5, exit_codes=[0, 0], tokens=10)
        _run_with_rows(conn, status="failed", attempts=4, settle_s=40.0, exit_codes=[3], tokens=5)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "harness_metrics_rows_up") == 1
    assert delta("harness_runs", status="succeeded") == 1 and delta("harness_runs", status="failed") == 1
    assert delta("harness_run_retries_total") == 1 + 3
    assert delta("harness_run_settle_seconds_bucket", status="succeeded", le="2.0") == 1
    assert delta("harness_run_settle_seconds_bucket", status="succeeded", le="1.0") == 0
    assert delta("harness_run_settle_seconds_bucket", status="failed", le="30.0") == 0
    assert delta("harness_run_settle_seconds_bucket", status="failed", le="60.0") == 1
    assert delta("harness_run_settle_seconds_count", status="failed") == 1
    assert delta("harness_sandbox_commands_total", exit_code="0") == 2
    assert delta("harness_sandbox_commands_total", exit_code="3") == 1
    assert delta("harness_oc_tokens_total", mode="live", kind="total") == 30
    assert delta("harness_oc_latency_seconds_bucket", mode="live", le="2.5") == 2
    assert delta("harness_oc_latency_seconds_bucket", mode="live", le="1.0") == 0


def test_no_pool_no_database_still_answers(served_api: ServedApp, client: httpx.Client) -> None:
    """The served API has no pool on its socket, and its rows go away: the scrape still answers."""
    from psycopg_pool import ConnectionPool

    samples = scrape(client)
    assert value(samples, "harness_pool_up") == 0
    down = ConnectionPool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=True, timeout=1,
                          kwargs={"connect_timeout": 1})
    real = served_api.state.app_pool
    served_api.state.app_pool = down
    try:
        samples = scrape(client)
    finally:
        served_api.state.app_pool = real
        down.close()
    assert value(samples, "harness_metrics_rows_up") == 0
    assert ("harness_runs", (("status", "queued"),)) not in samples
