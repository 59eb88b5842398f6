"""Routing on the Celery launcher: a run's priority class, from its intent's constraints, as the
tags dagster-celery's ``CeleryRunLauncher`` reads (``dagster-celery/queue``,
``dagster-celery/run_priority``).

``constraints.priority`` is ``high``, ``normal`` (the default) or ``low``. Every run launched while
``HARNESS_RUN_LAUNCHER=celery`` carries both tags (retries inherit them): without one, the
launcher sends priority 0, which on Redis is the *highest* (kombu's Redis transport emulates
priorities with one list per step and serves the lowest number first), so untagged runs would
overtake everything. A waiting high run is therefore taken before any normal or low one still in
the broker; runs already handed to a worker are not preempted.

Queues: every run goes to the ``dagster`` queue. A worker host consumes the queues in
``HARNESS_WORKER_QUEUES``, so a host can be given another queue, but no intent constraint routes to
one yet: ``constraints.queue`` was built and dropped on this branch (adding it beside ``priority``
to the intent contract made Schemathesis 4.32.5 fail to generate ``POST /intents`` bodies,
"Cannot generate an array with 1 demanded elements", in the full suite).
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
    if priority not in PRIORITIES:  # the contract allows only these; fail closed all the same
        raise ValueError(f"constraints.priority {priority!r}: expected one of {', '.join(PRIORITIES)}")
    return {QUEUE_TAG: DEFAULT_QUEUE, PRIORITY_TAG: str(PRIORITIES[priority])}
