"""Failure alerts: a signed JSON event (contracts/alert-event) to every configured webhook when a
run ends failed for good or canceled, delivered at least once.

**When.** Not on Dagster's own run-failure events: a Dagster run's FAILURE is often followed by
its retry, and a cancel recorded by the app can turn a FAILURE into ``canceled``. What "failed for
good" means is ``lifecycle.status`` (final ``failed`` = no retry pending), and every stored status
goes through ``lifecycle.observe``, which calls ``enqueue`` in the transaction that stores the
observation: the alert and the status that caused it commit together or not at all, whoever
observed it first (the ``run_status_sync`` sensor, ``GET /runs/{id}``, cancel, resume).

**Once per outcome.** The event id is derived from the outcome, so every later observation of
it inserts nothing: a cancel happens once per run (resume refuses a canceled run), a failure once
per Dagster run that ended the group (a run resumed by hand that fails again is a new failure).

**Delivery.** ``deliver_due`` (the ``alert_delivery`` sensor) posts due rows of ``app.alerts``
and records every attempt there, so a restart re-reads where each alert stands.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

import contracts
from pipelines import clock
from pipelines.orchestration import webhook
from pipelines.settings import load
from pipelines.store import alerts as outbox
from pipelines.store import repo

ALERTED = ("failed", "canceled")
# A sensor tick must end well inside Dagster's sensor timeout (60 s) even when a receiver hangs
# every post until the timeout: no new post starts after this.
DELIVERY_BUDGET_S = 30.0
BATCH = 100  # posts per pass at most; the rest wait for the next tick


def event_id(run_id: str, status: str, dagster_run_id: str | None) -> str:
    key = f"{run_id}|{status}" + (f"|{dagster_run_id}" if status == "failed" else "")
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def event(run: repo.Run, seen: repo.Observed, at: datetime) -> dict[str, Any]:
    return {
        "eventId": event_id(run.run_id, seen.status, seen.last_dagster_run_id),
        "type": f"run.{seen.status}",
        "runId": run.run_id,
        "intentId": run.intent_id,
        "traceId": run.trace_id,
        "attempts": seen.attempts,
        "dagsterRunId": seen.last_dagster_run_id,
        "occurredAt": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def enqueue(conn: psycopg.Connection, run: repo.Run, seen: repo.Observed) -> None:
    """Queue the alert for an observation just stored, when it calls for one and alerts are on."""
    if seen.status not in ALERTED:
        return
    urls = load().alert_urls
    if not urls:
        return
    now = clock.now()
    body = event(run, seen, now)
    outbox.enqueue(conn, event_id=body["eventId"], run_id=run.run_id, urls=urls, body=body, now=now)


@dataclass(frozen=True)
class Attempt:
    event_id: str
    url: str
    error: str | None  # None: delivered


def deliver_due(conn: psycopg.Connection, *, secret: str, timeout_s: float,
                jitter: Callable[[], float] = random.random) -> list[Attempt]:
    """Post due alerts, each in a transaction holding its row: a 2xx marks it delivered, anything
    else schedules its next attempt (``webhook.backoff``). A crash mid-post rolls the row back to
    due, to be sent again: at least once, and the receiver deduplicates by event id."""
    attempts: list[Attempt] = []
    deadline = time.monotonic() + DELIVERY_BUDGET_S
    client: httpx.Client | None = None  # only when something is due: most ticks find nothing
    try:
        while len(attempts) < BATCH and time.monotonic() < deadline:
            with conn.transaction():
                due = outbox.claim_due(conn, clock.now())
                if due is None:
                    break
                client = client or httpx.Client(timeout=timeout_s)
                error = _send(client, due, secret)
                if error is None:
                    outbox.mark_delivered(conn, due, clock.now())
                else:
                    outbox.mark_failed(conn, due, error, clock.now() + webhook.backoff(due.attempts + 1, jitter))
            attempts.append(Attempt(due.event_id, due.url, error))
    finally:
        if client is not None:
            client.close()
    return attempts


def _send(client: httpx.Client, due: outbox.Due, secret: str) -> str | None:
    # Checked before every send, not only when queued: a row must never stop the status it came
    # with from being stored, and one that does not conform stays queued, with the reason, until fixed.
    found = contracts.violations("alert-event", due.body)
    if found:
        return f"alert-event contract: {found[0].pointer or '/'}: {found[0].message}"
    return webhook.post(client, due.url, event_id=due.event_id, body=repo.canonical_json(due.body),
                        secret=secret, now=clock.now())
