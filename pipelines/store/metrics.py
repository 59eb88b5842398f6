"""Run metrics read from the app's rows at scrape time (``GET /metrics``, api/metrics.py): what the
runs did is what the tables say, never a counter a process kept (and lost when it restarted).

Every figure is over the rows present: retention (``runs:prune``) deletes old runs, so a counter
read here can go down after a prune; Prometheus treats that as a counter reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

RUN_STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "canceled")
SETTLED = ("succeeded", "failed", "canceled")
# Submit -> settled, seconds (a demo intent settles in ~1-3 s on the warm pool).
SETTLE_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
OC_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (one per upper bound, then +Inf), the sum and the count."""

    buckets: tuple[tuple[float, int], ...]
    total: float
    count: int


def _histogram(conn: psycopg.Connection, values_sql: str, bounds: Sequence[float],
               params: Sequence[object] = ()) -> Histogram:
    """``values_sql`` selects one column ``v`` (seconds); NULLs are left out."""
    counts = ", ".join(f"count(*) FILTER (WHERE v <= {float(b)!r})" for b in bounds)
    row = conn.execute(f"SELECT {counts}, count(*), coalesce(sum(v), 0) FROM ({values_sql}) AS x "
                       "WHERE v IS NOT NULL", params).fetchone()
    assert row is not None
    *cumulative, count, total = row
    return Histogram(tuple(zip(bounds, cumulative, strict=True)), float(total), int(count))


def runs_by_status(conn: psycopg.Connection) -> dict[str, int]:
    """Runs per status as last observed (sql/0005), every status present (0 when none)."""
    found: dict[str, int] = dict(conn.execute("SELECT status, count(*) FROM app.runs GROUP BY status").fetchall())
    return {status: int(found.get(status, 0)) for status in RUN_STATUSES}


def settle_seconds(conn: psycopg.Connection) -> dict[str, Histogram]:
    """Submit (``created_at``) to settled (``status_at``, when the final status was first stored)
    per final status."""
    return {status: _histogram(conn, "SELECT extract(epoch FROM status_at - created_at)::float8 AS v "
                                     "FROM app.runs WHERE status = %s", SETTLE_BUCKETS, (status,))
            for status in SETTLED}


def retries(conn: psycopg.Connection) -> int:
    """Dagster runs beyond each app run's first (retries and re-executions), as last observed."""
    row = conn.execute("SELECT coalesce(sum(greatest(attempts - 1, 0)), 0) FROM app.runs").fetchone()
    return int(row[0]) if row else 0


def sandbox_exit_codes(conn: psycopg.Connection) -> dict[int, int]:
    """Sandbox commands of committed sandbox steps, by exit code."""
    rows = conn.execute(
        "SELECT (r -> 'result' ->> 'exitCode')::int AS code, count(*) FROM app.run_steps s, "
        "jsonb_array_elements(s.output -> 'results') AS r WHERE s.step = 'sandbox' AND s.status = 'succeeded' "
        "GROUP BY code ORDER BY code").fetchall()
    return {int(code): int(n) for code, n in rows if code is not None}


def oc_latency_seconds(conn: psycopg.Connection) -> dict[str, Histogram]:
    """The provider latency each committed OC step recorded, per OC mode (in replay: the recorded call's)."""
    modes = [r[0] for r in conn.execute(
        "SELECT DISTINCT output -> 'meta' ->> 'mode' FROM app.run_steps WHERE step = 'oc' AND status = 'succeeded' "
        "ORDER BY 1").fetchall() if r[0] is not None]
    return {mode: _histogram(conn, "SELECT (output -> 'meta' ->> 'latencyMs')::float8 / 1000 AS v FROM app.run_steps "
                                   "WHERE step = 'oc' AND status = 'succeeded' AND output -> 'meta' ->> 'mode' = %s",
                             OC_LATENCY_BUCKETS, (mode,))
            for mode in modes}


def oc_tokens(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """Tokens of committed OC steps by (mode, kind): prompt, completion, total."""
    rows = conn.execute(
        "SELECT output -> 'meta' ->> 'mode', "
        "coalesce(sum((output -> 'meta' -> 'usage' ->> 'promptTokens')::bigint), 0), "
        "coalesce(sum((output -> 'meta' -> 'usage' ->> 'completionTokens')::bigint), 0), "
        "coalesce(sum((output -> 'meta' -> 'usage' ->> 'totalTokens')::bigint), 0) "
        "FROM app.run_steps WHERE step = 'oc' AND status = 'succeeded' GROUP BY 1 ORDER BY 1").fetchall()
    found: dict[tuple[str, str], int] = {}
    for mode, prompt, completion, total in rows:
        if mode is None:
            continue
        found |= {(mode, "prompt"): int(prompt), (mode, "completion"): int(completion), (mode, "total"): int(total)}
    return found
