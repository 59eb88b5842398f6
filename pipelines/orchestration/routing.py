"""Routing on the Celery launcher: a run's priority class, from its intent's constraints, as the
tags dagster-celery's ``CeleryRunLauncher`` reads (``dagster-celery/queue``,
``dagster-celery/run_priority``).

``constraints.priority`` is ``high``, ``normal`` (the default) or ``low``; constraints are free-form
for the planner and the intent contract does not declare this one (declaring it made Schemathesis
4.32.5 fail to generate ``POST /intents`` bodies in the full suite), so any other value is no
priority of ours and the run is normal. Every run launched while
``HARNESS_RUN_LAUNCHER=celery`` carries both tags (retries inherit them): without one, the
launcher sends priority 0, which on Redis is the *highest* (kombu's Redis transport emulates
priorities with one list per step and serves the lowest number first), so untagged runs would
overtake everything. A waiting high run is therefore taken before any normal or low one still in
the broker; runs already handed to a worker are not preempted.

Queues: every run goes to the ``dagster`` queue. A worker host consumes the queues in
``HARNESS_WORKER_QUEUES``, so a host can be given another queue, but no intent constraint routes to
one yet (a ``constraints.queue`` was built and dropped for the same Schemathesis failure).
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
    if not isinstance(priority, str) or priority not in PRIORITIES:
        priority = "normal"
    return {QUEUE_TAG: DEFAULT_QUEUE, PRIORITY_TAG: str(PRIORITIES[priority])}
