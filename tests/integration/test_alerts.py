"""Failure alerts end to end on real rows: Dagster run groups in real run storage, observed by the
status sync pass (what the run_status_sync sensor runs), queued in app.alerts, and posted to
loopback receivers that refuse the first deliveries. The clock is moved by hand past each
backoff, so nothing waits."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context

import contracts
from pipelines import clock
from pipelines.orchestration import alerts, status_sync, webhook
from pipelines.sensors.alert_sensor import alert_delivery
from pipelines.store import repo

SECRET = "s3cret-for-tests"
T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first ``fail_first`` deliveries,
    then takes each event id once (a repeat is answered 200 and dropped, as a receiver should)."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.deliveries: list[dict[str, Any]] = []  # every request, in order
        self.taken: dict[str, dict[str, Any]] = {}  # event id -> body, first accepted delivery only
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Harness-Timestamp"]
                expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body,
                                                hashlib.sha256).hexdigest()
                with receiver.lock:
                    failing = len(receiver.deliveries) < receiver.fail_first
                    receiver.deliveries.append({
                        "event_id": self.headers["X-Harness-Event-Id"], "timestamp": timestamp,
                        "signed": hmac.compare_digest(expected, self.headers["X-Harness-Signature"]),
                        "body": json.loads(body), "answered": 500 if failing else 200})
                    if not failing:
                        receiver.taken.setdefault(self.headers["X-Harness-Event-Id"], json.loads(body))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(clock, "now", fake)
    return fake


def _alerts_to(monkeypatch: pytest.MonkeyPatch, *receivers: Receiver) -> None:
    monkeypatch.setenv("HARNESS_ALERT_URLS", ",".join(r.url for r in receivers))
    monkeypatch.setenv("HARNESS_ALERT_SECRET", SECRET)


def _app_run(conn: psycopg.Connection) -> str:
    intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), idempotency_key=None,
                                      body={"goal": "g", "inputs": {}, "constraints": {}, "connectors": []})
    run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id="t-alert",
                                options={}, idempotency_key=None)
    return run_id


def _dagster_run(instance: DagsterInstance, app_run_id: str, status: str, *, will_retry: bool | None = None,
                 parent: str | None = None) -> str:
    """A Dagster run of the app run's group as the daemon leaves it: FAILURE then its will_retry tag."""
    run_id = str(uuid.uuid4())
    tags = {"app/run_id": app_run_id, **({"dagster/parent_run_id": parent} if parent else {})}
    initial = DagsterRunStatus.NOT_STARTED if status == "FAILURE" else DagsterRunStatus(status)
    instance.add_run(DagsterRun(job_name="hello_job", run_id=run_id, status=initial, tags=tags))
    if status == "FAILURE":
        instance.report_run_failed(instance.get_run_by_id(run_id), message="boom")
        if will_retry is not None:
            instance.add_run_tags(run_id, {"dagster/will_retry": str(will_retry).lower()})
    return run_id


def _sync(app_conn: psycopg.Connection, runs_conn: psycopg.Connection) -> None:
    status_sync.sync(app_conn, runs_conn, status_sync.Cursor())


def _deliver(app_db_url: str) -> list[alerts.Attempt]:
    """One delivery pass on a connection of its own, as a restarted process would: all it knows
    is in app.alerts."""
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        return alerts.deliver_due(conn, secret=SECRET, timeout_s=10, jitter=random.Random(7).random)


def _rows(app_conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return app_conn.execute("SELECT event_id, url, attempts, delivered_at IS NOT NULL, last_error FROM app.alerts "
                            "ORDER BY url").fetchall()


def test_a_run_failed_for_good_is_alerted_once_through_failures_and_restarts(
        app_conn: psycopg.Connection, app_db_url: str, runs_conn: psycopg.Connection, instance: DagsterInstance,
        now: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver(fail_first=2) as receiver:
        _alerts_to(monkeypatch, receiver)
        run_id = _app_run(app_conn)
        first = _dagster_run(instance, run_id, "FAILURE", will_retry=True)
        last = _dagster_run(instance, run_id, "FAILURE", will_retry=False, parent=first)
        _sync(app_conn, runs_conn)
        _sync(app_conn, runs_conn)  # the outcome observed again queues nothing more
        event_id = alerts.event_id(run_id, "failed", last)
        assert [r[:4] for r in _rows(app_conn)] == [(event_id, receiver.url, 0, False)]

        assert [a.error is None for a in _deliver(app_db_url)] == [False]  # 500
        assert _deliver(app_db_url) == []  # not due again before its backoff
        for _ in range(2):
            now.advance(timedelta(seconds=webhook.BACKOFF_CAP_S))
            _deliver(app_db_url)  # 500, then 200
        now.advance(timedelta(seconds=webhook.BACKOFF_CAP_S))
        assert _deliver(app_db_url) == []

    assert [d["answered"] for d in receiver.deliveries] == [500, 500, 200]
    assert {d["event_id"] for d in receiver.deliveries} == {event_id}
    assert all(d["signed"] for d in receiver.deliveries)
    assert list(receiver.taken) == [event_id]
    body = contracts.validate("alert-event", receiver.taken[event_id])
    assert body == {"eventId": event_id, "type": "run.failed", "runId": run_id, "intentId": body["intentId"],
                    "traceId": "t-alert", "attempts": 2, "dagsterRunId": last, "occurredAt": "2026-12-01T12:00:00Z"}
    assert _rows(app_conn) == [(event_id, receiver.url, 3, True, None)]


def test_a_crash_after_the_receiver_took_it_sends_it_again_under_the_same_event_id(
        app_conn: psycopg.Connection, app_db_url: str, runs_conn: psycopg.Connection, instance: DagsterInstance,
        now: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver(fail_first=0) as receiver:
        _alerts_to(monkeypatch, receiver)
        run_id = _app_run(app_conn)
        _dagster_run(instance, run_id, "FAILURE", will_retry=False)
        _sync(app_conn, runs_conn)

        real_post = webhook.post

        def post_then_die(*args: Any, **kwargs: Any) -> str | None:
            real_post(*args, **kwargs)
            raise SystemExit("killed between the receiver's 200 and delivered_at's commit")

        monkeypatch.setattr(webhook, "post", post_then_die)
        with pytest.raises(SystemExit):
            _deliver(app_db_url)
        monkeypatch.setattr(webhook, "post", real_post)
        assert [a.error for a in _deliver(app_db_url)] == [None]  # still due: sent again

    assert len(receiver.deliveries) == 2
    assert len({d["event_id"] for d in receiver.deliveries}) == 1
    assert len(receiver.taken) == 1  # the receiver's dedup keeps one
    assert [r[2:4] for r in _rows(app_conn)] == [(1, True)]


def test_no_alert_for_a_run_that_failed_then_succeeded_on_retry(
        app_conn: psycopg.Connection, runs_conn: psycopg.Connection, instance: DagsterInstance, now: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver(fail_first=0) as receiver:
        _alerts_to(monkeypatch, receiver)
        run_id = _app_run(app_conn)
        first = _dagster_run(instance, run_id, "FAILURE")  # will_retry not decided yet
        _sync(app_conn, runs_conn)
        instance.add_run_tags(first, {"dagster/will_retry": "true"})
        _sync(app_conn, runs_conn)
        assert app_conn.execute("SELECT status FROM app.runs").fetchone() == ("retrying",)
        _dagster_run(instance, run_id, "SUCCESS", parent=first)
        _sync(app_conn, runs_conn)
        assert app_conn.execute("SELECT status FROM app.runs").fetchone() == ("succeeded",)
        assert _rows(app_conn) == []


def test_a_canceled_run_reaches_every_url_once(app_conn: psycopg.Connection, app_db_url: str,
                                                runs_conn: psycopg.Connection, instance: DagsterInstance,
                                                now: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver(fail_first=1) as flaky, Receiver(fail_first=0) as steady:
        _alerts_to(monkeypatch, flaky, steady)
        run_id = _app_run(app_conn)
        repo.mark_canceled(app_conn, run_id)
        _sync(app_conn, runs_conn)  # canceled before launch: unsettled rows are observed too
        for _ in range(3):
            _deliver(app_db_url)
            now.advance(timedelta(seconds=webhook.BACKOFF_CAP_S))

    event_id = alerts.event_id(run_id, "canceled", None)
    for receiver in (flaky, steady):
        assert list(receiver.taken) == [event_id]
        assert receiver.taken[event_id]["type"] == "run.canceled"
        assert receiver.taken[event_id]["dagsterRunId"] is None
    assert [d["answered"] for d in flaky.deliveries] == [500, 200]


def test_alerts_are_off_without_urls(app_conn: psycopg.Connection, runs_conn: psycopg.Connection,
                                     instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_ALERT_URLS", raising=False)
    run_id = _app_run(app_conn)
    _dagster_run(instance, run_id, "FAILURE", will_retry=False)
    _sync(app_conn, runs_conn)
    assert app_conn.execute("SELECT status FROM app.runs").fetchone() == ("failed",)
    assert _rows(app_conn) == []
    result = alert_delivery(build_sensor_context())
    assert "alerts off" in str(result.skip_message)


def test_the_sensor_delivers_what_is_due(app_conn: psycopg.Connection, app_db_url: str,
                                         runs_conn: psycopg.Connection, instance: DagsterInstance,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    with Receiver(fail_first=0) as receiver:
        _alerts_to(monkeypatch, receiver)
        run_id = _app_run(app_conn)
        _dagster_run(instance, run_id, "FAILURE", will_retry=False)
        _sync(app_conn, runs_conn)
        result = alert_delivery(build_sensor_context())
    assert "delivered 1 alert(s), 0 failed" in str(result.skip_message)
    assert len(receiver.taken) == 1
