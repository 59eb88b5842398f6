from dagster import build_schedule_context

from pipelines.definitions import defs


def test_every_job_loads() -> None:
    names = sorted(job.name for job in defs.resolve_all_job_defs())
    assert {"intent_job", "crashdemo", "crashdemo_soak", "hello_job", "prune"} <= set(names)
    for name in names:
        assert defs.resolve_job_def(name)


def test_reaper_sensor_is_on_by_default() -> None:
    sensor = defs.resolve_sensor_def("run_reaper")
    assert sensor.default_status.value == "RUNNING"


def test_definitions_do_not_import_openai() -> None:
    """openai costs ~0.8 s to import, paid by every code server and stock run worker; replay (the
    default) never needs it (pipelines/oc/config.py)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, pipelines.definitions; print('openai' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_oc_records_under_the_data_dir_not_into_the_package() -> None:
    from pathlib import Path

    from pipelines.settings import REPO_ROOT

    # The data dir as it was when the definitions were imported (the suite moves it later).
    recordings = Path(defs.resources["oc"].recordings_dir)  # type: ignore[index]  # Mapping | None
    assert recordings.name == "oc-fixtures"
    assert not recordings.is_relative_to(REPO_ROOT / "pipelines")


def test_prune_schedules_exist_only_for_a_configured_age() -> None:
    from dataclasses import replace

    from pipelines.jobs.prune import prune_schedules
    from pipelines.settings import load

    settings = replace(load(), prune_older_than=None, soak_prune_older_than=None)
    assert prune_schedules(settings) == []
    schedules = prune_schedules(replace(settings, prune_older_than="30d", soak_prune_older_than="7d",
                                        prune_cron="1 2 * * *", soak_prune_cron="3 4 * * *"))
    assert [(s.name, s.cron_schedule, s.default_status.value) for s in schedules] == [
        ("prune_runs_schedule", "1 2 * * *", "RUNNING"), ("prune_soak_schedule", "3 4 * * *", "RUNNING")]
    configs = [s.evaluate_tick(build_schedule_context()).run_requests[0].run_config for s in schedules]  # type: ignore[index]
    assert configs == [{"ops": {"prune_old": {"config": {"older_than": "30d", "soak": False}}}},
                       {"ops": {"prune_old": {"config": {"older_than": "7d", "soak": True}}}}]


def test_the_materialized_keys_are_declared_with_their_lineage() -> None:
    # Declared, the UI's catalog shows each key's group and description, and its lineage view
    # plan -> sandbox -> result, instead of three unattached keys.
    graph = defs.resolve_asset_graph()
    declared = {key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
                for key in graph.get_all_asset_keys()}
    assert declared == {"intent/plan": set(), "intent/sandbox": {"intent/plan"}, "intent/result": {"intent/sandbox"},
                        "durability/crashdemo_soak": set()}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description and graph.get(key).group_name in {"intent", "durability"}


def test_every_sensor_ticks_on_every_daemon_loop() -> None:
    """Asked for the loop's own period, a sensor is skipped whenever its tick started a little late
    in the loop before: the reaper then ticked every 10 s (pipelines/sensors/__init__.py)."""
    from pipelines.definitions import defs
    from pipelines.orchestration.dagster_internals import MIN_INTERVAL_LOOP_TIME

    assert MIN_INTERVAL_LOOP_TIME == 5
    sensors = list(defs.sensors or [])
    assert sensors
    for sensor in sensors:
        assert sensor.minimum_interval_seconds is not None, sensor.name
        assert sensor.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME, sensor.name
