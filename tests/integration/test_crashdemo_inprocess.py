"""The crashdemo job in process: marks are exactly-once across re-execution and real failures."""

import psycopg
from dagster import DagsterInstance, ReexecutionOptions, execute_job, instance_for_test, reconstructable

from pipelines.jobs import crashdemo as cd
from pipelines.jobs.crashdemo import run_config as crashdemo_run_config
from pipelines.resources.app_db import AppDatabase


def _marks(url: str, wf: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT step, count(*) FROM app.marks WHERE run_id = %s GROUP BY step", (wf,)).fetchall()
    return dict(rows)


def test_run_then_rerun_keeps_one_mark_per_step(app_db_url: str) -> None:
    resources = {"app_db": AppDatabase(url=app_db_url)}
    for _ in range(2):
        result = cd.crashdemo.execute_in_process(run_config=crashdemo_run_config("wf-a"), resources=resources)
        assert result.success
    assert _marks(app_db_url, "wf-a") == {"s1": 1, "s2": 1}


def test_failing_step_writes_no_mark(app_db_url: str) -> None:
    resources = {"app_db": AppDatabase(url=app_db_url)}
    result = cd.crashdemo.execute_in_process(
        run_config=crashdemo_run_config("wf-b", fail_always=True), resources=resources, raise_on_error=False)
    assert not result.success
    assert _marks(app_db_url, "wf-b") == {"s1": 1}
    with psycopg.connect(app_db_url) as conn:
        status, attempts = conn.execute(
            "SELECT status, attempts FROM app.run_steps WHERE run_id = 'wf-b' AND step = 's2'").fetchone()
    assert (status, attempts) == ("failed", 1)


def reconstructable_crashdemo():
    return cd.crashdemo


def test_reexecute_from_failure_keeps_app_id(app_db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    from pipelines.definitions import defs  # noqa: F401  (resources bound via EnvVar)

    with instance_for_test() as instance:
        assert isinstance(instance, DagsterInstance)
        job = reconstructable(_job_with_resources)
        first = execute_job(job, instance=instance, run_config=crashdemo_run_config("wf-c", fail_always=True),
                            tags={"app/run_id": "wf-c"})
        assert not first.success
        second = execute_job(
            job, instance=instance, run_config=crashdemo_run_config("wf-c"), tags={"app/run_id": "wf-c"},
            reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
        )
        assert second.success
        assert [e.step_key for e in second.all_events if e.event_type_value == "STEP_SUCCESS"] == ["s2"]
    assert _marks(app_db_url, "wf-c") == {"s1": 1, "s2": 1}


def _job_with_resources():
    from pipelines.definitions import defs

    return defs.resolve_job_def("crashdemo")
