from pipelines.definitions import defs


def test_every_job_loads() -> None:
    names = sorted(job.name for job in defs.resolve_all_job_defs())
    assert {"intent_job", "crashdemo", "crashdemo_soak", "hello_job"} <= set(names)
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
