"""``WarmPoolRunLauncher``: Dagster's run-launcher seam, backed by the warm pool (``pool.py``).

Stateless on purpose: Dagster builds one launcher in the webserver, the daemon and every run
worker. ``launch_run`` only hands the run id (and job name) to the pool over a unix socket; the
pool forks the worker, which tags the run with its own pid and start ticks before the run starts:
all that ``check_run_worker_health`` and a pool-less ``terminate`` need.

    run_launcher:
      module: pipelines.launcher.launcher
      class: WarmPoolRunLauncher
      config:
        socket_path: {env: HARNESS_POOL_SOCKET}
        launch_wait_seconds: 15
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from dagster import DagsterInstance, DagsterRun, Field, IntSource, StringSource

from pipelines.launcher.protocol import PoolUnreachable, request, worker_of
from pipelines.orchestration.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    DagsterLaunchFailedError,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from pipelines.store import run_workers

RETRY_INTERVAL_S = 0.1


class WarmPoolRunLauncher(RunLauncher[DagsterInstance], ConfigurableClass):
    def __init__(self, socket_path: str, launch_wait_seconds: int = 15,
                 inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self.socket_path = socket_path
        self.launch_wait_seconds = launch_wait_seconds
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "socket_path": Field(StringSource, description="Unix socket of the warm pool (<data_dir>/run/pool.sock)"),
            "launch_wait_seconds": Field(
                IntSource, is_required=False, default_value=15,
                description="How long a launch keeps retrying while the pool restarts before failing the run",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmPoolRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        run_id = context.dagster_run.run_id
        deadline = time.monotonic() + self.launch_wait_seconds
        last = "no attempt"
        while True:
            try:
                reply = request(self.socket_path, {"op": "launch", "run_id": run_id,
                                                   "job_name": context.dagster_run.job_name})
            except PoolUnreachable as exc:
                last = str(exc)
            else:
                if reply.get("ok"):
                    return
                last = str(reply.get("error"))
                if not reply.get("retry"):
                    raise DagsterLaunchFailedError(f"warm pool refused run {run_id}: {last}")
            if time.monotonic() >= deadline:
                raise DagsterLaunchFailedError(
                    f"warm pool did not accept run {run_id} within {self.launch_wait_seconds}s "
                    f"(is `python -m scripts.pool` running on {self.socket_path}?): {last}"
                )
            time.sleep(RETRY_INTERVAL_S)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:
            if request(self.socket_path, {"op": "terminate", "run_id": run_id}).get("ok"):
                return True
        except PoolUnreachable:
            pass
        # The pool is down or restarted, but the worker may live on: interrupt it directly, after
        # proving the pid still belongs to that worker (pids are recycled).
        worker = worker_of(run.tags)
        if worker is None or not run_workers.is_alive(*worker):
            return False
        os.kill(worker[0], signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = worker_of(run.tags)
        if worker is None:
            # Not launched by the pool (e.g. before a launcher switch): not ours to judge; the
            # reaper sensor and max_runtime still cover it.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no warm-pool worker tags")
        pid, ticks = worker
        if run_workers.is_alive(pid, ticks):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker pid {pid} (start ticks {ticks}) is gone", run_worker_id=str(pid)
        )
