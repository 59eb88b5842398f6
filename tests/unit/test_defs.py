from pipelines.definitions import defs


def test_every_job_loads() -> None:
    names = sorted(job.name for job in defs.resolve_all_job_defs())
    assert {"intent_job", "crashdemo", "crashdemo_soak", "hello_job"} <= set(names)
    for name in names:
        assert defs.resolve_job_def(name)


def test_reaper_sensor_is_on_by_default() -> None:
    sensor = defs.resolve_sensor_def("run_reaper")
    assert sensor.default_status.value == "RUNNING"
