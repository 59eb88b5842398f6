"""The bounds an intent's ``constraints`` put on each of its runs: a maximum run time and a
concurrency key with a limit (contracts/intent-create.schema.json).

**Run time** is Dagster's own: the ``dagster/max_runtime`` tag, which run monitoring
(``run_monitoring`` in dagster_home/dagster.yaml, every ``poll_interval_seconds``) enforces on a
STARTED run by terminating it and failing it with "Exceeded maximum runtime of N seconds.". It
bounds each Dagster run, so a retry (which inherits the tag) gets the limit again.

**Concurrency** is held here, before a run is launched, because neither Dagster mechanism fits
the default stack: tag concurrency limits need the QueuedRunCoordinator (the warm launcher runs
behind the DefaultRunCoordinator, ~0.2 s vs ~0.6 s per run) and are static instance config, not
a limit per intent; the warm pool's own queue holds runs as STARTING, which run monitoring fails
after ``start_timeout_seconds`` (30 s) and Dagster's terminate refuses, fine for a burst, wrong
for a wait of minutes behind a key. A held run is simply not launched yet: its row stays in the
outbox (status ``queued``, cancellable like any unlaunched run), and the reconciler sensor
launches it once a slot of its key is free, oldest first. Both launchers behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pipelines.orchestration import dagster_runs
from pipelines.store import repo

MAX_RUNTIME_TAG = "dagster/max_runtime"
CONCURRENCY_KEY_TAG = "harness/concurrency_key"
CONCURRENCY_LIMIT_TAG = "harness/concurrency_limit"  # shown in the UI; the limit is read from the intent


@dataclass(frozen=True)
class Bounds:
    max_run_seconds: int | None = None
    concurrency_key: str | None = None
    concurrency_limit: int = 0


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def of(constraints: dict[str, Any]) -> Bounds:
    """The bounds in an intent's constraints. The API checked them against the contract; intents
    accepted before the contract typed these fields may hold anything, and such values bound nothing."""
    concurrency = constraints.get("concurrency")
    key, limit = None, 0
    if isinstance(concurrency, dict) and isinstance(concurrency.get("key"), str):
        limit = _positive_int(concurrency.get("limit")) or 0
        key = concurrency["key"] if limit else None
    return Bounds(max_run_seconds=_positive_int(constraints.get("maxRunSeconds")),
                  concurrency_key=key, concurrency_limit=limit)

def tags(bounds: Bounds) -> dict[str, str]:
    out = {}
    if bounds.max_run_seconds is not None:
        out[MAX_RUNTIME_TAG] = str(bounds.max_run_seconds)
    if bounds.concurrency_key is not None:
        out[CONCURRENCY_KEY_TAG] = bounds.concurrency_key
        out[CONCURRENCY_LIMIT_TAG] = str(bounds.concurrency_limit)
    return out


def may_launch(conn: psycopg.Connection, dagster_conn: psycopg.Connection, run: repo.Run, *,
               chosen: int = 0, wait: bool = True) -> bool:
    """Whether ``run`` may be launched now: it has no concurrency key, or it is first in its key's
    line and the key has a free slot. ``chosen``: runs of the key the caller already decided to
    launch and has not launched yet (they are ahead of ``run`` and take slots).

    Call inside the transaction that launches the run: the key's advisory lock is held until it
    ends, so two launchers cannot both take the last slot. ``wait=False`` answers False at once
    when another launcher holds it (the reconciler passes over it until its next tick)."""
    bounds = of(run.constraints)
    key = bounds.concurrency_key
    if key is None:
        return True
    lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    row = conn.execute(f"SELECT {lock}(hashtextextended(%s, 0))", (f"harness/concurrency:{key}",)).fetchone()
    if not wait and not (row and row[0]):
        return False
    if repo.waiting_ahead(conn, run, key) > chosen:
        return False  # first come, first served: a new run must not take the slot an older one waits for
    taken = dagster_runs.active_app_runs(dagster_conn, CONCURRENCY_KEY_TAG, key, besides=run.run_id)
    return taken + chosen < bounds.concurrency_limit
