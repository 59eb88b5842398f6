"""Every private Dagster name the harness uses, imported here and nowhere else.

Pinned: dagster 1.13.27 (``PINNED_DAGSTER``). ``tests/unit/test_dagster_internals.py`` fails
loudly when an upgrade moves, renames or re-signatures any of them; re-check each one against the
new version before bumping the pin.

Warm run launcher (``pipelines/launcher``):

- ``RunLauncher``, ``LaunchRunContext``, ``CheckRunHealthResult``, ``WorkerStatus``,
  ``ConfigurableClass``, ``ConfigurableClassData``, ``DagsterLaunchFailedError``: the documented
  run-launcher extension point, which Dagster only exposes from private modules.
- ``execute_run_body``: ``dagster._cli.api._execute_run_command_body``, the body of
  ``dagster api execute_run`` (what a stock run worker does after its imports).
- ``capture_interrupts``: turns SIGINT into Dagster's cooperative run termination, as
  ``dagster api execute_run`` wraps its body.

Run tags:

- ``HIDDEN_TAG_PREFIX`` (``.dagster/``): tags under it are ``TagType.HIDDEN``, left out of the UI's
  run lists and tag filters; the warm pool's worker-pid tags use it (plumbing, not for operators).

Configuration checks (``tests/unit/test_deploy_k8s.py``, the on-paper Kubernetes deployment):

- ``dagster_instance_config``: how ``DagsterInstance`` loads and validates a ``dagster.yaml``.
- ``class_from_code_pointer`` and ``process_config``: a configurable class from its module and
  name, and its own config schema applied to a config value (what rehydrating one does first).

Celery worker hosts (``pipelines/launcher/celery_app.py``):

- ``ExecuteRunArgs`` and ``unpack_value``: what dagster-celery's ``CeleryRunLauncher`` packs into
  its ``execute_job`` task, unpacked as ``dagster_celery.tasks`` does.

Run storage (``pipelines/orchestration/dagster_storage.py``):

- ``SqlRunStorage._core_add_run(col_values, tags)``, overridden (what ``add_run`` and
  ``add_historical_run`` call), with ``RunsTable`` and ``RunTagsTable``, the tables it writes, and
  ``DagsterRunAlreadyExists``, what it raises for a run that exists.

Sensors (``pipelines/sensors/__init__.py``):

- ``MIN_INTERVAL_LOOP_TIME``: the sensor daemon's loop period, which every sensor's minimum
  interval is set under (so each ticks on every loop).

Daemon with pooled storage (``scripts/daemon.py``):

- ``daemon_controller_from_instance`` and ``WorkspaceFileTarget``: what ``dagster-daemon run -w``
  does with the instance it opened, so the daemon can run on an instance whose storages were
  switched to pooled connections first.
"""

from __future__ import annotations

from dagster._cli.api import _execute_run_command_body as execute_run_body
from dagster._config.validate import process_config
from dagster._core.errors import DagsterLaunchFailedError, DagsterRunAlreadyExists
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.tags import HIDDEN_TAG_PREFIX, TagType, get_tag_type
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.controller import daemon_controller_from_instance
from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, class_from_code_pointer, unpack_value
from dagster._utils.interrupts import capture_interrupts

PINNED_DAGSTER = "1.13.27"

__all__ = [
    "HIDDEN_TAG_PREFIX",
    "MIN_INTERVAL_LOOP_TIME",
    "PINNED_DAGSTER",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "DagsterLaunchFailedError",
    "DagsterRunAlreadyExists",
    "ExecuteRunArgs",
    "LaunchRunContext",
    "RunLauncher",
    "RunTagsTable",
    "RunsTable",
    "SqlRunStorage",
    "TagType",
    "WorkerStatus",
    "WorkspaceFileTarget",
    "capture_interrupts",
    "class_from_code_pointer",
    "daemon_controller_from_instance",
    "dagster_instance_config",
    "execute_run_body",
    "get_tag_type",
    "process_config",
    "unpack_value",
]
