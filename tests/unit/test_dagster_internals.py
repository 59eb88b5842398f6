"""Fails loudly when a dagster upgrade moves or re-signatures a private name the launcher uses."""

import inspect

import dagster

from pipelines.orchestration import dagster_internals as di


def test_pinned_version_is_installed() -> None:
    assert dagster.__version__ == di.PINNED_DAGSTER, (
        f"dagster {dagster.__version__} installed but the launcher's internals are checked against "
        f"{di.PINNED_DAGSTER}: re-verify pipelines.dagster_internals.py, then bump PINNED_DAGSTER"
    )


def test_execute_run_body_signature() -> None:
    params = list(inspect.signature(di.execute_run_body).parameters)
    assert params == ["run_id", "instance", "write_stream_fn", "set_exit_code_on_failure"], params


def test_capture_interrupts_is_a_context_manager() -> None:
    with di.capture_interrupts():
        pass


def test_launcher_extension_point() -> None:
    assert {"launch_run", "terminate", "check_run_worker_health"} <= set(dir(di.RunLauncher))
    assert set(di.WorkerStatus.__members__) >= {"RUNNING", "FAILED"}
    assert list(di.CheckRunHealthResult._fields)[:2] == ["status", "msg"]
    assert list(di.LaunchRunContext._fields)[:1] == ["dagster_run"]
    assert issubclass(di.DagsterLaunchFailedError, Exception)
    assert {"from_config_value", "config_type", "inst_data"} <= set(dir(di.ConfigurableClass))


def test_daemon_controller_signature() -> None:
    params = inspect.signature(di.daemon_controller_from_instance).parameters
    assert list(params)[:2] == ["instance", "workspace_load_target"], list(params)
    target = di.WorkspaceFileTarget(paths=["workspace.yaml"])
    assert [o.location_name for o in target.create_origins()] == ["harness"]


def test_optimize_for_webserver_signature() -> None:
    params = list(inspect.signature(dagster.DagsterInstance.optimize_for_webserver).parameters)
    assert params == ["self", "statement_timeout", "pool_recycle", "max_overflow"], params


def test_celery_task_args_round_trip() -> None:
    """What dagster-celery's CeleryRunLauncher packs for its execute_job task, the worker unpacks."""
    from dagster._serdes import pack_value

    assert "run_id" in di.ExecuteRunArgs._fields
    fields = set(di.ExecuteRunArgs._fields)
    assert {"job_origin", "run_id", "instance_ref"} <= fields
    from dagster._core.definitions.reconstruct import ReconstructableJob

    origin = ReconstructableJob.for_module("pipelines.jobs.hello", "hello_job").get_python_origin()
    args = di.ExecuteRunArgs(job_origin=origin, run_id="r1", instance_ref=None)
    assert di.unpack_value(pack_value(args), as_type=di.ExecuteRunArgs).run_id == "r1"


def test_add_run_goes_through_core_add_run() -> None:
    """The run storage overrides ``_core_add_run`` to add a run and its tags in one statement: it
    must still be what ``add_run`` and ``add_historical_run`` call, with the same arguments."""
    params = list(inspect.signature(di.SqlRunStorage._core_add_run).parameters)
    assert params == ["self", "col_values", "tags"], params
    for caller in (di.SqlRunStorage.add_run, di.SqlRunStorage.add_historical_run):
        assert "self._core_add_run(" in inspect.getsource(caller), caller
    assert {"run_id", "run_body", "status"} <= set(di.RunsTable.c.keys())
    assert set(di.RunTagsTable.c.keys()) == {"id", "run_id", "key", "value"}
