"""The scheduled soak job: real child processes SIGKILL themselves at the crash points; each proof
is recorded in app.soak_results and summarised in one materialization."""

import psycopg

from pipelines.definitions import defs
from pipelines.jobs.soak import SOAK_KEY
from pipelines.resources.app_db import AppDatabase


def test_soak_batch_holds_and_is_recorded(app_db_url: str) -> None:
    job = defs.resolve_job_def("crashdemo_soak")
    result = job.execute_in_process(run_config={"ops": {"prove_batch": {"config": {"proofs": 2}}}},
                                    resources={"app_db": AppDatabase(url=app_db_url)})
    assert result.success
    (mat,) = list(result.asset_materializations_for_node("prove_batch"))
    assert mat.asset_key.path == SOAK_KEY
    assert mat.metadata["runs"].value == 2 and mat.metadata["held"].value == 2
    with psycopg.connect(app_db_url) as conn:
        rows = conn.execute("SELECT crash_at, held, marks FROM app.soak_results ORDER BY crash_at").fetchall()
    assert rows == [("s2_after_commit", True, {"s1": 1, "s2": 1}), ("s2_before_commit", True, {"s1": 1, "s2": 1})]


def test_schedule_is_on_by_default() -> None:
    schedule = defs.resolve_schedule_def("crashdemo_soak_schedule")
    assert schedule.default_status.value == "RUNNING"
