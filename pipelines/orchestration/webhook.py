"""One signed webhook post, and when to try again after a failed one.

The receiver checks ``X-Harness-Signature: sha256=<hex>``, the HMAC-SHA256 under the shared
secret of ``<X-Harness-Timestamp>.<body>``: signing the timestamp with the body lets it refuse a
replayed delivery by its age, and ``X-Harness-Event-Id`` (also the body's ``eventId``) lets it
drop a second delivery of an event it has already taken.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 600.0  # a receiver down for hours is still tried every 5–10 minutes


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post(client: httpx.Client, url: str, *, event_id: str, body: bytes, secret: str, now: datetime) -> str | None:
    """Post the event; None when the receiver took it (any 2xx), else why not. A redirect is a
    failure too: the body is signed for this URL's receiver, not wherever it points."""
    timestamp = str(int(now.timestamp()))
    headers = {"Content-Type": "application/json", "X-Harness-Event-Id": event_id,
               "X-Harness-Timestamp": timestamp, "X-Harness-Signature": signature(secret, timestamp, body)}
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.is_success:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def backoff(failures: int, jitter: Callable[[], float]) -> timedelta:
    """The wait after the ``failures``-th failed attempt: exponential, capped, and scaled by a
    random half to whole (``jitter()`` in [0, 1)), so alerts that failed together against one
    receiver do not all come back at once."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 30))
    return timedelta(seconds=ceiling * (0.5 + jitter() / 2))
