"""The whole stack as real processes (code server, daemon, webserver, API) on the test databases:
runbook W3 over real HTTP, the durability proof in every kill mode (SIGKILL, restart, rows counted
by id), real failures, the reaper sparing live runs, and the outbox reconciler.
"""

import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from dagster import DagsterRunStatus, instance_for_test
from fastapi.testclient import TestClient

from api.main import build_state, create_app
from pipelines.jobs.crashdemo import run_config as crashdemo_run_config
from pipelines.jobs.intent import intent_job
from pipelines.jobs.intent import run_config as intent_run_config
from pipelines.orchestration import lifecycle
from pipelines.orchestration.dagster_client import DagsterClient, DagsterUnavailable
from pipelines.orchestration.dagster_runs import APP_RUN_TAG
from pipelines.settings import REPO_ROOT, Settings, load, sqlalchemy_psycopg2
from pipelines.store import repo
from scripts import crashdemo_proof as proof
from scripts import stack, ui_check
from scripts.demo import submit_and_wait
from tests import per_checkout
from tests.conftest import TEST_DATA_DIR, TestDatabases

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}


def boot(test_databases: TestDatabases, launcher: str, port: int) -> Iterator[Settings]:
    """A stack of real processes on the test databases, its own data dir and ports."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", test_databases.app_url)
        mp.setenv("APP_DATABASE_URL", test_databases.app_url)
        mp.setenv("DAGSTER_DATABASE_URL", test_databases.dagster_url)
        mp.setenv("HARNESS_DATA_DIR", str(TEST_DATA_DIR / f"stack-{launcher}"))
        mp.setenv("HARNESS_RUN_LAUNCHER", launcher)
        mp.setenv("PORT", str(port))
        for var in ("DAGSTER_PORT", "DAGSTER_GRPC_PORT", "API_TOKEN"):
            mp.delenv(var, raising=False)
        settings = load()
        try:  # a failed `up` must not leave parts running against the suite's databases
            stack.up(settings)
            yield settings
        finally:
            stack.down(settings)


@pytest.fixture(scope="module")
def running_stack(test_databases: TestDatabases) -> Iterator[Settings]:
    yield from boot(test_databases, "warm", per_checkout.E2E_WARM)


@pytest.fixture
def api(running_stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{running_stack.api_port}", timeout=40) as client:
        yield client


def _wait_final(api: httpx.Client, run_id: str, deadline_s: float = 90) -> dict:
    view: dict = {}

    def final() -> bool:
        nonlocal view
        view = api.get(f"/runs/{run_id}", params={"wait": 10}).json()
        return view["status"] in lifecycle.FINAL

    proof.poll(f"run {run_id} to finish", final, deadline_s, 0)
    return view


def test_w3_intent_to_run_view_over_http(api: httpx.Client, running_stack: Settings,
                                         test_databases: TestDatabases) -> None:
    health = api.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    accepted = api.post(f"/intents/{intent_id}/run", json={"traceId": "handoff-demo"})
    assert accepted.status_code == 202
    view = _wait_final(api, accepted.json()["runId"])
    assert view["status"] == "succeeded"
    assert view["traceId"] == "handoff-demo"
    assert [s["status"] for s in view["steps"]] == ["succeeded"] * 3
    assert view["oc"]["mode"] == "replay" and view["sandbox"]["results"][0]["exitCode"] == 0
    (dagster_run,) = view["dagsterRuns"]
    assert dagster_run["url"].startswith(running_stack.dagster_ui_url)
    with psycopg.connect(test_databases.dagster_url) as conn:
        tags = dict(conn.execute("SELECT key, value FROM run_tags WHERE run_id = %s",
                                 (dagster_run["runId"],)).fetchall())
    assert tags["app/trace_id"] == "handoff-demo" and tags["app/run_id"] == view["runId"]


def test_the_dagster_ui_shows_the_run_in_a_real_browser(api: httpx.Client, test_databases: TestDatabases) -> None:
    """Headless Chromium opens the RunView's link: steps, materializations, app tags (not the
    pool's), the run list, the asset catalog and lineage (scripts/ui_check.py); screenshots under
    .data/test/ui-check for a person to look at."""
    view = submit_and_wait(api, DEMO, trace_id="ui-check")
    assert view["status"] == "succeeded", view
    shots = ui_check.check(view, TEST_DATA_DIR / "ui-check")
    assert [s.name for s in shots] == ["run.png", "run-tags.png", "runs.png", "catalog.png", "lineage.png"]
    assert all(s.read_bytes().startswith(b"\x89PNG") for s in shots)
    # Hidden from the pages, the pool's tags are still on the run for run monitoring.
    with psycopg.connect(test_databases.dagster_url) as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM run_tags WHERE run_id = %s",
                                           (view["dagsterRuns"][0]["runId"],))}
    assert set(ui_check.HIDDEN) <= keys


def test_up_again_keeps_every_running_part_and_status_check_says_all_up(running_stack: Settings,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    stack.up(running_stack)  # the ports our own live parts hold are no reason to refuse
    started = capsys.readouterr().out
    assert started.count("already running pid") == len(stack.components(running_stack)), started
    check = subprocess.run([sys.executable, "-m", "scripts.stack", "status", "--check"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "stopped" not in check.stdout


def _effective_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[2])


def test_status_shows_the_uid_of_every_running_part(running_stack: Settings) -> None:
    shown = subprocess.run([sys.executable, "-m", "scripts.stack", "status"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    lines = {line.split()[0]: line for line in shown.splitlines()}
    for comp in stack.components(running_stack):
        pid = stack.read_pid(running_stack, comp.name)
        assert pid is not None, shown
        # What /proc says of that very process, not what the stack meant to start it as.
        assert f"uid {_effective_uid(pid)} (" in lines[comp.name], shown


def test_real_failure_ends_failed_after_max_retries_without_extra_marks(running_stack: Settings,
                                                                        test_databases: TestDatabases) -> None:
    wf = "wf-fail-always"
    DagsterClient(running_stack.dagster_ui_url).launch("crashdemo", crashdemo_run_config(wf, fail_always=True),
                                                       {"app/run_id": wf})

    def done() -> bool:
        runs = proof.group(test_databases.dagster_url, wf)
        return len(runs) == 4 and runs[-1].status == "FAILURE" and runs[-1].will_retry is False

    proof.poll("four failed runs (max_retries 3)", done, 120, 0.5)
    assert [r.retry_number for r in proof.group(test_databases.dagster_url, wf)] == [0, 1, 2, 3]
    assert proof.marks(test_databases.app_url, wf) == {"s1": 1}


def test_reaper_spares_a_live_run_slower_than_its_period(running_stack: Settings,
                                                         test_databases: TestDatabases) -> None:
    wf = "wf-slow-but-alive"
    # A 12 s pause inside s2 and nobody kills it: two reaper ticks pass over a live worker.
    DagsterClient(running_stack.dagster_ui_url).launch(
        "crashdemo", crashdemo_run_config(wf, "s2_before_commit", 12.0), {"app/run_id": wf})
    proof.poll("the slow run to finish", lambda: (g := proof.group(test_databases.dagster_url, wf)) != []
               and g[-1].settled, 90, 0.5)
    runs = proof.group(test_databases.dagster_url, wf)
    assert [r.status for r in runs] == ["SUCCESS"]
    assert proof.marks(test_databases.app_url, wf) == {"s1": 1, "s2": 1}


def test_outbox_reconciler_launches_what_the_api_could_not_and_cancel_holds(
        api: httpx.Client, running_stack: Settings, test_databases: TestDatabases) -> None:
    stack.stop(running_stack, "webserver")
    try:
        intent_id = api.post("/intents", json=DEMO).json()["intentId"]
        kept = api.post(f"/intents/{intent_id}/run", json={"traceId": "outbox"}).json()["runId"]
        dropped = api.post(f"/intents/{intent_id}/run", json={"traceId": "outbox-canceled"}).json()["runId"]
        assert api.get(f"/runs/{kept}").json()["status"] == "queued"
        assert api.post(f"/runs/{dropped}/cancel").status_code == 202
        # With the webserver down, only the reconciler sensor (daemon + code server) can launch it.
        view = _wait_final(api, kept, 120)
    finally:
        stack.up(running_stack)
    assert view["status"] == "succeeded"
    assert len(view["dagsterRuns"]) == 1
    canceled = api.get(f"/runs/{dropped}").json()
    assert canceled["status"] == "canceled" and canceled["dagsterRuns"] == []


# ---------------------------------------------------------------- exactly-once launch
# Each test injects a fault at the exact point where a launch used to be repeated, lets a client
# retry and the real reconciler sensor tick past its grace period, then counts root runs by tag.

def _roots(dagster_url: str, app_run_id: str) -> list[str]:
    """Dagster runs of the app run that are no retry or re-execution of another: its roots."""
    return [r.run_id for r in proof.group(dagster_url, app_run_id) if r.parent_run_id is None]


def _reconciler_ticked_after(dagster_url: str, since: float) -> bool:
    with psycopg.connect(dagster_url) as conn:
        row = conn.execute("SELECT extract(epoch FROM max(timestamp)) FROM job_ticks WHERE tick_body::jsonb ->> 'job_name' = 'intent_outbox'"
                           ).fetchone()
    return bool(row and row[0] and float(row[0]) > since)


def _settle_once(api: httpx.Client, test_databases: TestDatabases, run_id: str) -> None:
    """The run succeeds, the reconciler has looked at it after its grace period, one root exists."""
    assert _wait_final(api, run_id)["status"] == "succeeded"
    with psycopg.connect(test_databases.app_url) as conn:
        (created,) = conn.execute("SELECT extract(epoch FROM created_at) FROM app.runs WHERE run_id = %s",
                                  (run_id,)).fetchone()
    past_grace = float(created) + lifecycle.LAUNCH_GRACE_S
    proof.poll("a reconciler tick past the launch grace", lambda: _reconciler_ticked_after(
        test_databases.dagster_url, past_grace), 60, 0.5)
    assert len(_roots(test_databases.dagster_url, run_id)) == 1
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"


class _AnswersErrorAfterCreating(DagsterClient):
    """Dagster's webserver creating the run, then answering HTTP 500 (seen under chaos)."""

    def launch(self, job: str, run_config: dict, tags: dict[str, str]) -> str:
        super().launch(job, run_config, tags)
        raise DagsterUnavailable("Dagster webserver answered HTTP 500", 500, "PythonError")


@contextmanager
def _in_process_api(running_stack: Settings, dagster: DagsterClient) -> Iterator[TestClient]:
    state = dataclasses.replace(build_state(running_stack), dagster=dagster)
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        yield client


def test_a_500_after_the_run_was_created_launches_once(api: httpx.Client, running_stack: Settings,
                                                      test_databases: TestDatabases) -> None:
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    with _in_process_api(running_stack, _AnswersErrorAfterCreating(running_stack.dagster_ui_url)) as faulty:
        accepted = faulty.post(f"/intents/{intent_id}/run", json={"traceId": "answered-500"},
                               headers={"Idempotency-Key": "launch-once-500"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["runId"]
    again = api.post(f"/intents/{intent_id}/run", json={"traceId": "answered-500"},
                     headers={"Idempotency-Key": "launch-once-500"})
    assert again.json() == {"runId": run_id}
    _settle_once(api, test_databases, run_id)


def test_postgres_gone_before_the_launch_is_recorded_launches_once(
        api: httpx.Client, running_stack: Settings, test_databases: TestDatabases,
        monkeypatch: pytest.MonkeyPatch) -> None:
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]

    def database_gone(conn: psycopg.Connection, run_id: str) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(repo, "mark_launched", database_gone)
    with _in_process_api(running_stack, DagsterClient(running_stack.dagster_ui_url)) as faulty:
        failed = faulty.post(f"/intents/{intent_id}/run", json={"traceId": "pg-gone"},
                             headers={"Idempotency-Key": "launch-once-pg"})
    monkeypatch.undo()
    assert failed.status_code == 503, failed.text
    # The client retries with the same key once the database is back.
    run_id = api.post(f"/intents/{intent_id}/run", json={"traceId": "pg-gone"},
                      headers={"Idempotency-Key": "launch-once-pg"}).json()["runId"]
    _settle_once(api, test_databases, run_id)


def test_api_killed_after_the_row_commits_launches_once(api: httpx.Client, test_databases: TestDatabases) -> None:
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    # What a request killed right after its commit leaves: the row, no launch.
    with psycopg.connect(test_databases.app_url) as conn:
        run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id="api-killed",
                                    options={"oc": {"mode": "replay", "seed": 0}}, idempotency_key="launch-once-kill")
    proof.poll("the reconciler to launch the orphaned run",
               lambda: proof.group(test_databases.dagster_url, run_id) != [], 60, 0.2)
    # The client's retry arrives after the reconciler launched it.
    retried = api.post(f"/intents/{intent_id}/run", json={"traceId": "api-killed"},
                       headers={"Idempotency-Key": "launch-once-kill"})
    assert retried.json() == {"runId": run_id}
    _settle_once(api, test_databases, run_id)


def assert_proof_holds(running_stack: Settings, mode: str, point: str) -> None:
    restart = None
    if mode == "postgres":
        restart = lambda: proof.restart_postgres(dataclasses.replace(running_stack, data_dir=TEST_DATA_DIR))  # noqa: E731
    result = proof.prove(running_stack, mode, point, postgres_restart=restart)
    assert result.held, result.problems
    assert result.marks == {"s1": 1, "s2": 1}
    assert result.group[-1].status == "SUCCESS" and len(result.group) >= 2
    assert result.group[-1].root_run_id == result.group[0].run_id


def test_a_run_created_but_never_submitted_runs_under_its_root(api: httpx.Client, test_databases: TestDatabases
                                                              ) -> None:
    """What the webserver killed between Dagster's create and submit leaves: the app run's one root
    run, NOT_STARTED for good. Dagster's run monitoring fails it after ``start_timeout_seconds``
    (from its create time) and the retry daemon runs it under that root; no second root is ever
    launched."""
    intent_id = api.post("/intents", json=DEMO).json()["intentId"]
    template_id = api.post(f"/intents/{intent_id}/run", json={"traceId": "template"}).json()["runId"]
    assert _wait_final(api, template_id)["status"] == "succeeded"
    with psycopg.connect(test_databases.app_url) as conn:
        run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id="never-submitted",
                                    options={"oc": {"mode": "replay", "seed": 0}}, idempotency_key="never-submitted")
    storage = {"storage": {"postgres": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}}
    with instance_for_test(overrides=storage) as instance:
        # A run as the webserver creates it (same job, origin and plan), for this app run.
        template = instance.get_run_by_id(_roots(test_databases.dagster_url, template_id)[0])
        orphan = template._replace(run_id=str(uuid.uuid4()), status=DagsterRunStatus.NOT_STARTED,
                                   run_config=intent_run_config(run_id), tags={**intent_job.tags, APP_RUN_TAG: run_id})
        instance.add_run(orphan)
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:  # created long ago
        conn.execute("UPDATE runs SET create_timestamp = localtimestamp - interval '10 minutes' "
                     "WHERE run_id = %s", (orphan.run_id,))
    assert _wait_final(api, run_id, 120)["status"] == "succeeded"
    group = proof.group(test_databases.dagster_url, run_id)
    assert _roots(test_databases.dagster_url, run_id) == [orphan.run_id]
    assert [(r.status, r.parent_run_id) for r in group] == [("FAILURE", None), ("SUCCESS", orphan.run_id)]


def test_legacy_proof_routes(api: httpx.Client) -> None:
    started = api.post("/crashdemo", params={"wf": "wf-legacy-route"})
    assert started.status_code == 202 and started.json()["wf"] == "wf-legacy-route"
    assert api.post("/crashdemo", params={"wf": "wf-legacy-route"}).status_code == 409
    proof.poll("both marks", lambda: api.get("/marks", params={"wf": "wf-legacy-route"}).json()["marks"]
               == {"s1": 1, "s2": 1}, 60, 0.2)


def test_resume_re_executes_a_failed_run_from_failure(api: httpx.Client) -> None:
    intent_id = api.post("/intents", json={**DEMO, "goal": "no fixture for this one"}).json()["intentId"]
    run_id = api.post(f"/intents/{intent_id}/run", json={"oc": {"mode": "replay", "seed": 7}}).json()["runId"]
    failed = _wait_final(api, run_id, 150)  # replay never invents a plan: every retry fails too
    assert failed["status"] == "failed" and len(failed["dagsterRuns"]) == 4
    oc_step = failed["steps"][0]
    assert (oc_step["name"], oc_step["status"], oc_step["attempts"], oc_step["error"]["kind"]) == \
        ("oc", "failed", 4, "fixture_missing")
    assert api.post(f"/runs/{run_id}/resume").json() == {"runId": run_id}
    proof.poll("the resumed run to finish", lambda: len((v := api.get(f"/runs/{run_id}").json())["dagsterRuns"]) == 5
               and v["status"] == "failed", 90, 0.5)
    view = api.get(f"/runs/{run_id}").json()
    assert view["dagsterRuns"][-1]["parentRunId"] == failed["dagsterRuns"][-1]["runId"]
    assert view["steps"][0]["attempts"] == 5
    assert api.post(f"/runs/{run_id}/cancel").status_code == 202  # a failed run can still be marked canceled
    assert api.get(f"/runs/{run_id}").json()["status"] == "canceled"


# Last in the module: MODE=postgres restarts the server under everything else.
@pytest.mark.parametrize(("mode", "point"), [
    ("worker", "s2_before_commit"), ("worker", "s2_after_commit"), ("pool", "s2_before_commit"),
    ("server", "s2_after_commit"), ("stack", "s2_before_commit"), ("postgres", "s2_before_commit"),
])
def test_sigkill_and_restart_settle_exactly_once(running_stack: Settings, test_databases: TestDatabases,
                                                 mode: str, point: str) -> None:
    if mode == "postgres" and not test_databases.embedded:
        pytest.skip("MODE=postgres restarts the suite's own embedded server; it never restarts DATABASE_URL's")
    assert_proof_holds(running_stack, mode, point)
