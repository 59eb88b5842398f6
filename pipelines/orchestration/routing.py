"""Routing on the Celery launcher: a run's priority class, from its intent's constraints, as the
tags dagster-celery's ``CeleryRunLauncher`` reads (``dagster-celery/queue``,
``dagster-celery/run_priority``).

``constraints.priority`` is ``high``, ``normal`` (the default) or ``low``, and
``constraints.queue`` names a broker queue (default ``dagster``); the intent contract declares both,
so anything else was refused with a 400 at the boundary. Every run launched while
``HARNESS_RUN_LAUNCHER=celery`` carries both tags (retries inherit them): without one, the
launcher sends priority 0, which on Redis is the *highest* (kombu's Redis transport emulates
priorities with one list per step and serves the lowest number first), so untagged runs would
overtake everything. A waiting high run is therefore taken before any normal or low one still in
the broker; runs already handed to a worker are not preempted.

Queues: a worker host consumes the queues in ``HARNESS_WORKER_QUEUES``; a class of work that only
some hosts serve (e.g. hosts holding a connector's credentials) names their queue, and those hosts'
total concurrency is that queue's cap. A run on a queue no host consumes waits in the broker (and
run monitoring's start timeout ends it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUEUE_TAG = "dagster-celery/queue"
PRIORITY_TAG = "dagster-celery/run_priority"
DEFAULT_QUEUE = "dagster"
# Redis serves the lowest step first (priority_steps 0..9, pipelines/launcher/celery_app.py).
PRIORITIES = {"high": 0, "normal": 5, "low": 9}


def tags(constraints: Mapping[str, Any]) -> dict[str, str]:
    priority = constraints.get("priority", "normal")
    if not isinstance(priority, str) or priority not in PRIORITIES:  # the contract allows only these; fail closed all the same
        raise ValueError(f"constraints.priority {priority!r}: expected one of {', '.join(PRIORITIES)}")
    return {QUEUE_TAG: str(constraints.get("queue", DEFAULT_QUEUE)), PRIORITY_TAG: str(PRIORITIES[priority])}
