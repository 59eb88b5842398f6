"""Alert events and their delivery, without a database: the body meets its contract, the event id
names one outcome, the signature is what a receiver computes, a post tells taken from not, and
the backoff grows, caps and jitters within bounds."""

from __future__ import annotations

import hashlib
import hmac
import random
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

import contracts
from pipelines import clock
from pipelines.orchestration import alerts, webhook
from pipelines.store import repo

RUN = repo.Run(run_id="run_" + "a" * 32, intent_id="int_" + "b" * 32, trace_id=None, options={}, launched_at=None,
               canceled_at=None, created_at=datetime(2026, 1, 1))


def _seen(status: str, dagster_run_id: str | None) -> repo.Observed:
    return repo.Observed(status=status, attempts=1 if dagster_run_id else 0, last_dagster_run_id=dagster_run_id,
                         version=repo.NEVER, canceled=status == "canceled")


def test_the_event_meets_its_contract() -> None:
    for seen in (_seen("failed", "d1"), _seen("canceled", None)):
        body = contracts.validate("alert-event", alerts.event(RUN, seen, clock.now()))
        assert body["type"] == f"run.{seen.status}" and body["occurredAt"] == "2026-01-01T12:00:00Z"


def test_an_event_id_names_one_outcome() -> None:
    ids = {alerts.event_id(RUN.run_id, "failed", "d1"), alerts.event_id(RUN.run_id, "failed", "d2"),
           alerts.event_id(RUN.run_id, "canceled", None), alerts.event_id("run_" + "c" * 32, "failed", "d1")}
    assert len(ids) == 4  # a resumed run that fails again is a new failure
    assert alerts.event_id(RUN.run_id, "canceled", "d1") == alerts.event_id(RUN.run_id, "canceled", None)
    assert alerts.event_id(RUN.run_id, "failed", "d1") == alerts.event_id(RUN.run_id, "failed", "d1")


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"eventId":"evt_x"}'
    expected = hmac.new(b"k", b"1767268800." + body, hashlib.sha256).hexdigest()
    assert webhook.signature("k", "1767268800", body) == f"sha256={expected}"
    assert webhook.signature("k", "1767268801", body) != webhook.signature("k", "1767268800", body)


class _Hook(BaseHTTPRequestHandler):
    answer = 200
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.seen.append(dict(self.headers))
        self.send_response(self.answer)
        if self.answer == 302:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("answer", "error"), [(200, None), (204, None), (500, "HTTP 500"), (302, "HTTP 302")])
def test_a_post_is_taken_only_on_2xx(hook: str, answer: int, error: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Hook, "answer", answer)
    with httpx.Client(timeout=10) as client:
        got = webhook.post(client, hook, event_id="evt_1", body=b"{}", secret="k", now=clock.now())
    assert (got is None) == (error is None) and (got or "").startswith(error or "")
    headers = _Hook.seen[0]
    assert headers["X-Harness-Event-Id"] == "evt_1" and headers["X-Harness-Timestamp"] == "1767268800"
    assert headers["X-Harness-Signature"] == webhook.signature("k", "1767268800", b"{}")


def test_an_unreachable_receiver_is_an_error_not_an_exception() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with httpx.Client(timeout=10) as client:
        got = webhook.post(client, f"http://127.0.0.1:{port}/", event_id="evt_1", body=b"{}", secret="k",
                           now=clock.now())
    assert got is not None and got.startswith("ConnectError")


def test_backoff_grows_caps_and_jitters_within_half_to_whole() -> None:
    delays = [webhook.backoff(n, random.random).total_seconds() for n in range(1, 40)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(webhook.BACKOFF_CAP_S, webhook.BACKOFF_BASE_S * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= webhook.BACKOFF_CAP_S
    assert webhook.backoff(3, random.Random(7).random) == webhook.backoff(3, random.Random(7).random)  # seeded
