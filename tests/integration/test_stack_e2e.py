"""The whole stack as real processes (code server, daemon, webserver, API) on the test databases:
runbook W3 over real HTTP, the durability proof in every kill mode (SIGKILL, restart, rows counted
by id), real failures, the reaper sparing live runs, and the outbox reconciler.
"""

import dataclasses
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from pipelines.orchestration.dagster_client import DagsterClient
from pipelines.orchestration.lifecycle import crashdemo_run_config
from pipelines.settings import REPO_ROOT, Settings, load
from scripts import crashdemo_proof as proof
from scripts import stack
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
        stack.up(settings)
        try:
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
        return view["status"] in ("succeeded", "failed", "canceled")

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


def test_up_again_keeps_every_running_part_and_status_check_says_all_up(running_stack: Settings,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    stack.up(running_stack)  # the ports our own live parts hold are no reason to refuse
    started = capsys.readouterr().out
    assert started.count("already running pid") == len(stack.components(running_stack)), started
    check = subprocess.run([sys.executable, "-m", "scripts.stack", "status", "--check"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "stopped" not in check.stdout


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


def assert_proof_holds(running_stack: Settings, mode: str, point: str) -> None:
    restart = None
    if mode == "postgres":
        restart = lambda: proof.restart_postgres(dataclasses.replace(running_stack, data_dir=TEST_DATA_DIR))  # noqa: E731
    result = proof.prove(running_stack, mode, point, postgres_restart=restart)
    assert result.held, result.problems
    assert result.marks == {"s1": 1, "s2": 1}
    assert result.group[-1].status == "SUCCESS" and len(result.group) >= 2
    assert result.group[-1].root_run_id == result.group[0].run_id


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
    assert failed["steps"][0] == {"name": "oc", "status": "failed", "attempts": 4}
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
