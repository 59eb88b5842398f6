"""W6: the RunView of a fixed intent, in replay mode, with ids and time injected, is byte-identical
to tests/golden/run-view.json — and the RunView of a run whose OC step fails (no recorded plan for
the intent), with its step error, to tests/golden/run-view-failed.json. A missing baseline fails;
`mise run test:golden:refresh` rewrites them.

The intent goes in through the real API app; the intent job runs in process (so its Dagster run
id can be fixed) against Postgres run storage; the view comes back through the API.
"""

import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import instance_for_test
from fastapi.testclient import TestClient

from api.main import build_state, create_app
from pipelines import clock
from pipelines.definitions import defs
from pipelines.jobs.intent import run_config as intent_run_config
from pipelines.resources.app_db import AppDatabase
from pipelines.settings import load, sqlalchemy_psycopg2
from tests import per_checkout
from tests.conftest import TestDatabases, truncate_app_tables

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "run-view.json"
GOLDEN_FAILED = GOLDEN.with_name("run-view-failed.json")
FIXED_NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
DAGSTER_RUN_ID = "00000000-0000-4000-8000-000000000001"
DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
# The view links to the Dagster UI; the baseline spells that port 4999 whatever PORT derives.
UI_PORT = per_checkout.GOLDEN + 1000
BASELINE_UI_PORT = 4999


@pytest.fixture
def client(test_databases: TestDatabases, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    truncate_app_tables(test_databases.app_url)
    monkeypatch.setenv("APP_DATABASE_URL", test_databases.app_url)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", test_databases.dagster_url)
    monkeypatch.setattr(clock, "now", lambda: FIXED_NOW)
    # Nothing listens on these ports (this checkout's own, tests/per_checkout.py), so the API's own
    # launch defers to the outbox and the job is executed below instead.
    settings = dataclasses.replace(load(), api_port=per_checkout.GOLDEN, dagster_ui_port=UI_PORT,
                                   dagster_grpc_port=per_checkout.GOLDEN + 2000)
    state = build_state(settings)
    counter = iter(range(1, 1000))
    state.new_id = lambda prefix: f"{prefix}_{next(counter):032x}"
    with TestClient(create_app(state)) as c:
        yield c


def render(view: dict) -> str:
    """The view as the baseline stores it (the UI port spelled as in the baseline)."""
    text = json.dumps(view, indent=2) + "\n"
    return text.replace(f"//127.0.0.1:{UI_PORT}/", f"//127.0.0.1:{BASELINE_UI_PORT}/")


def _execute(test_databases: TestDatabases, run_id: str, trace_id: str, *, succeeds: bool = True) -> None:
    storage = {"postgres": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}
    # Retries on, none allowed: the failed run is tagged as final (dagster/will_retry=false).
    with instance_for_test(overrides={"storage": storage, "run_retries": {"enabled": True}}) as instance:
        instance.delete_run(DAGSTER_RUN_ID) if instance.has_run(DAGSTER_RUN_ID) else None
        job = defs.resolve_job_def("intent_job")
        result = job.execute_in_process(
            run_config=intent_run_config(run_id), instance=instance, run_id=DAGSTER_RUN_ID,
            tags={"app/run_id": run_id, "app/trace_id": trace_id, "dagster/max_retries": "0"},
            resources={"app_db": AppDatabase(url=test_databases.app_url)}, raise_on_error=False,
        )
        assert result.success is succeeds


def _assert_golden(client: TestClient, run_id: str, golden: Path) -> dict:
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200
    rendered = render(response.json())
    assert response.content == client.get(f"/runs/{run_id}").content  # byte-stable between reads
    if os.environ.get("GOLDEN_REFRESH") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    if not golden.exists():
        pytest.fail(f"golden baseline {golden} is missing: run `mise run test:golden:refresh` on purpose")
    assert rendered == golden.read_text(), "RunView drifted from the golden baseline (refresh on purpose if intended)"
    return dict(response.json())


def test_run_view_matches_golden(client: TestClient, test_databases: TestDatabases) -> None:
    intent_id = client.post("/intents", json=DEMO).json()["intentId"]
    run_id = client.post(f"/intents/{intent_id}/run", json={"traceId": "golden-trace"}).json()["runId"]
    assert client.get(f"/runs/{run_id}").json()["status"] == "queued"
    _execute(test_databases, run_id, "golden-trace")
    _assert_golden(client, run_id, GOLDEN)


def test_failed_run_view_says_why_and_matches_golden(client: TestClient, test_databases: TestDatabases) -> None:
    intent_id = client.post("/intents", json={**DEMO, "goal": "nothing recorded for this goal"}).json()["intentId"]
    run_id = client.post(f"/intents/{intent_id}/run", json={"traceId": "golden-failed"}).json()["runId"]
    _execute(test_databases, run_id, "golden-failed", succeeds=False)
    view = _assert_golden(client, run_id, GOLDEN_FAILED)
    assert view["status"] == "failed"
    assert view["steps"][0]["error"]["kind"] == "fixture_missing"
    assert "scripts.oc_refresh" in view["steps"][0]["error"]["message"]  # says how to fix it
