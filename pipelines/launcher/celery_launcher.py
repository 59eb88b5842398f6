"""``HarnessCeleryRunLauncher``: dagster-celery's ``CeleryRunLauncher``, with two corrections.

1. Health: the stock launcher judges a run by its Celery task state in the result backend alone,
   and reports FAILED for any state but STARTED/SUCCESS. A Redis restart loses those states
   (PENDING), which would fail every run still executing on a healthy worker. Here a state the
   backend no longer knows falls back to the worker's heartbeat lease (``app.worker_leases``):
   valid → RUNNING; a dead lease is the reaper's to act on (it also waits out in-flight commits).
   A Celery FAILURE (the run's pool child died: its worker host lives and said so) stays FAILED.
2. Terminate: revokes the task with SIGINT, which the run's child turns into Dagster's cooperative
   cancel (``capture_interrupts``), instead of SIGTERM; and marks the run CANCELING first.

Launching is unchanged: ``execute_job`` onto the queue named by ``dagster-celery/queue`` (default
``dagster``) with ``dagster-celery/run_priority``.
"""

from __future__ import annotations

import psycopg
from dagster import DagsterRun
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from pipelines.orchestration.dagster_internals import CheckRunHealthResult, WorkerStatus
from pipelines.settings import load
from pipelines.store import db, leases

WORKER_TAG = "harness/worker"
LEASE_EPOCH_TAG = "harness/lease_epoch"


class HarnessCeleryRunLauncher(CeleryRunLauncher):
    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        state = self.celery.AsyncResult(task_id).state if task_id else "NO TASK ID"
        if state == "SUCCESS":
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        if state == "FAILURE":
            return CheckRunHealthResult(WorkerStatus.FAILED, "Celery task failed (its run worker died).")
        if state == "STARTED":
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        worker, epoch = run.tags.get(WORKER_TAG), run.tags.get(LEASE_EPOCH_TAG)
        if worker is None or epoch is None or not epoch.isdigit():
            # Not started by a worker host of ours: the stock verdict (anything else fails the run).
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"Celery task state {state}, no worker lease")
        with psycopg.connect(db.app_url(load()), autocommit=True, connect_timeout=5) as conn:
            dead = leases.revoke(conn, worker, int(epoch))  # waits out a commit still holding it
        if not dead:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"Celery task state {state}; worker {worker}'s "
                                        "lease is valid", run_worker_id=worker)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"worker {worker}'s lease (epoch {epoch}) expired: the "
                                    "worker host is gone or cut off", run_worker_id=worker)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None:
            return False
        self._instance.report_run_canceling(run)
        self.celery.AsyncResult(task_id).revoke(terminate=True, signal="SIGINT")
        return True
