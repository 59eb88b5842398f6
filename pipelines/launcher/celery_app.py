"""The Celery app of a worker host (``HARNESS_RUN_LAUNCHER=celery``): warm run workers behind
Dagster's ``CeleryRunLauncher``.

The stack launches runs with dagster-celery's own ``CeleryRunLauncher`` (``scripts/stack.py``
writes it into the generated ``dagster.yaml``): it puts an ``execute_job`` task on the broker queue
named by the run's ``dagster-celery/queue`` tag. This module is what a worker host
(``scripts/worker.py``, i.e. ``celery -A pipelines.launcher.celery_app worker``) serves for that
task name, in place of ``dagster_celery.app``:

- Warm, like the warm pool: the Celery parent imports dagster and the definitions and builds the
  (NullPool, fork-safe) Dagster instance once (``worker_init``), before it forks its pool children;
  a child switches its inherited instance to pooled storage connections once and runs the body of
  ``dagster api execute_run`` for each run without re-importing, up to ``MAX_RUNS_PER_CHILD`` runs
  (``scripts/worker.py``; not 1: Celery replaces an exited child on a ~1 s timer).
- Ordered writes: the launcher tags the run with the Celery task id *after* sending the task, and a
  tag write racing the run's first status write can lose one of them (both rewrite
  ``runs.run_body``). The child therefore waits for that tag first, then tags the run with its
  worker and lease, then starts it.
- At most once per run: a task for a run that is no longer STARTING (a redelivery, a run canceled
  or failed while queued) does nothing.
- Under the worker's lease: the agent passes ``HARNESS_WORKER_LEASE``; the app-database resource
  registers the run under it and every checkpoint commit checks it (``pipelines.store.leases``).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready
from dagster import DagsterInstance, DagsterRunStatus
from dagster_celery.config import TASK_EXECUTE_JOB_NAME
from dagster_celery.make_app import make_app
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from pipelines.launcher.celery_launcher import LEASE_EPOCH_TAG, WORKER_TAG
from pipelines.orchestration.dagster_internals import (
    ExecuteRunArgs,
    capture_interrupts,
    execute_run_body,
    unpack_value,
)
from pipelines.orchestration.dagster_storage import SchemaCachingPostgresRunStorage
from pipelines.settings import Settings, load

log = logging.getLogger("harness.celery")

TASK_TAG_WAIT_S = 10.0
# Pooled engines in the run's child, as the warm pool's workers (pipelines/launcher/pool.py).
WORKER_DB = {"statement_timeout": 0, "pool_recycle": 3600, "max_overflow": 10}
READY_FILE = "celery.ready"


def celery_config(settings: Settings) -> dict[str, Any]:
    """What the launcher (in ``dagster.yaml``) and the workers must agree on, beside broker and backend."""
    return {
        "worker_prefetch_multiplier": 1,  # a worker holds no more runs than it executes
        "task_acks_late": False,  # a lost worker's runs are reaped and retried, never redelivered
        "broker_connection_retry_on_startup": True,
        "result_expires": 86400,
        "broker_transport_options": {
            # dagster-celery's defaults (a launch fails fast when the broker is down) ...
            "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
            # ... and Redis's emulated priorities (pipelines/launcher/routing.py).
            "priority_steps": list(range(10)), "sep": ":", "queue_order_strategy": "priority",
        },
        "task_default_queue": "dagster",
    }


def build_app(settings: Settings) -> Celery:
    return make_app(app_args={"broker": settings.broker_url, "backend": settings.result_backend_url,
                              "include": [], "config_source": celery_config(settings),
                              "task_default_queue": "dagster"})


def _instance() -> DagsterInstance:
    instance = DagsterInstance.get()
    # Ask the schema questions once here, so the forked run children inherit the answers.
    if isinstance(instance.run_storage, SchemaCachingPostgresRunStorage):
        instance.run_storage.has_run_stats_index_cols()
    return instance


SETTINGS = load()
app = build_app(SETTINGS)
INSTANCE: DagsterInstance | None = None
_POOLED_IN: int | None = None  # the pid whose instance was switched to pooled connections


def _wait_for_task_tag(instance: DagsterInstance, run_id: str, task_id: str) -> Any:
    deadline = time.monotonic() + TASK_TAG_WAIT_S
    while True:
        run = instance.get_run_by_id(run_id)
        if run is None or run.tags.get(DAGSTER_CELERY_TASK_ID_TAG) == task_id or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def execute_warm(run_id: str, task_id: str) -> int:
    """Execute one run in this (fresh, forked) child; 0 when there was nothing to run."""
    global _POOLED_IN
    assert INSTANCE is not None, "the worker's parent builds the instance at start"
    instance = INSTANCE
    if _POOLED_IN != os.getpid():  # once per pool child: it keeps its engines for its next runs
        instance.optimize_for_webserver(**WORKER_DB)
        _POOLED_IN = os.getpid()
    run = _wait_for_task_tag(instance, run_id, task_id)
    if run is None or run.status != DagsterRunStatus.STARTING:
        log.warning("run %s is %s, not STARTING: nothing to execute", run_id, run.status if run else "missing")
        return 0
    lease = SETTINGS.worker_lease
    tags = {WORKER_TAG: lease[0], LEASE_EPOCH_TAG: str(lease[1])} if lease else {WORKER_TAG: "unleased"}
    instance.add_run_tags(run_id, tags)
    with capture_interrupts():
        return int(execute_run_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False))


@app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
def execute_job(self: Any, execute_job_args_packed: Any) -> int:
    args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
    return execute_warm(args.run_id, self.request.id)


@worker_init.connect
def warm_up(**_: Any) -> None:
    """In the Celery parent, before it forks any child: every import and the instance, once."""
    global INSTANCE
    from pipelines.definitions import defs
    from pipelines.sandbox.resource import SandboxResource

    INSTANCE = _instance()
    # Probe the sandbox once here, so every run's child inherits the answer (as the warm pool does).
    sandbox = (defs.resources or {}).get("sandbox")
    if isinstance(sandbox, SandboxResource):
        log.info("sandbox: %s", sandbox.status()["reason"])
    gc.freeze()  # children then do not copy-on-write-fault the imported pages by collecting them


@worker_ready.connect
def _ready(**_: Any) -> None:
    SETTINGS.run_dir.mkdir(parents=True, exist_ok=True)
    (SETTINGS.run_dir / READY_FILE).write_text(f"{os.getpid()}\n")

