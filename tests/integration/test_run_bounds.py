"""Bounds on a run (pipelines/orchestration/bounds.py) on a real warm stack over HTTP: a run over
its ``maxRunSeconds`` ends failed with the reason in its RunView; runs of one concurrency key never
execute more than its limit at once (sampled from Dagster's run rows), while another key's runs
are not held back, and a held run is queued and cancellable.

The slow runs replay a plan of ours (``sleep``), written where the stack's replay looks after the
shipped fixtures (its data dir's recordings); every wait polls with a deadline.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from pipelines.oc.fixture_store import Fixture, fixture_key, write_fixture
from pipelines.oc.result import ProviderMeta
from pipelines.orchestration.bounds import CONCURRENCY_KEY_TAG
from pipelines.settings import Settings
from tests import per_checkout
from tests.conftest import TestDatabases
from tests.integration.test_stack_e2e import _wait_final, boot

EXECUTING = ("STARTING", "STARTED", "CANCELING")


@pytest.fixture(scope="module")
def running_stack(test_databases: TestDatabases) -> Iterator[Settings]:
    yield from boot(test_databases, "warm", per_checkout.E2E_WARM)


@pytest.fixture
def api(running_stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{running_stack.api_port}", timeout=40) as client:
        yield client


def _sleeping_intent(stack: Settings, seconds: int, constraints: dict[str, Any]) -> dict[str, Any]:
    """An intent whose replayed plan sleeps ``seconds`` in the sandbox (goal made unique per call)."""
    intent = {"goal": f"sleep {seconds}s {secrets.token_hex(4)}", "inputs": {}, "constraints": constraints,
              "connectors": []}
    plan = {"schemaVersion": "oc-output/1", "summary": f"sleep {seconds}s", "files": [],
            "commands": [{"name": "sleep", "run": f"sleep {seconds}", "timeoutMs": 120_000}]}
    meta = ProviderMeta(provider="scripted", host=None, model="test-sleep-plan", request_id=None, latency_ms=None,
                        usage=None, finish_reason="stop")
    write_fixture(stack.oc_recordings_dir, Fixture(key=fixture_key(intent, 0), intent=intent, seed=0, plan=plan,
                                                   recorded_from=meta))
    return intent


def _submit(api: httpx.Client, intent: dict[str, Any], runs: int) -> list[str]:
    created = api.post("/intents", json=intent)
    assert created.status_code == 201, created.text
    intent_id = created.json()["intentId"]
    ids = []
    for _ in range(runs):
        accepted = api.post(f"/intents/{intent_id}/run", json={})
        assert accepted.status_code == 202, accepted.text
        ids.append(accepted.json()["runId"])
    return ids


def _view(api: httpx.Client, run_id: str, wait: int = 0) -> dict[str, Any]:
    return api.get(f"/runs/{run_id}", params={"wait": wait}).json()


def _executing(dagster_url: str, key: str) -> int:
    """Dagster runs of the key that are executing (or about to), read from the run rows."""
    with psycopg.connect(dagster_url) as conn:
        row = conn.execute("SELECT count(*) FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                           "WHERE t.key = %s AND t.value = %s AND r.status = ANY(%s)",
                           (CONCURRENCY_KEY_TAG, key, list(EXECUTING))).fetchone()
    return int(row[0]) if row else 0


def test_a_run_over_its_max_run_seconds_ends_failed_with_the_reason(api: httpx.Client, running_stack: Settings,
                                                                    test_databases: TestDatabases) -> None:
    intent = _sleeping_intent(running_stack, 120, {"maxRunSeconds": 2})
    (run_id,) = _submit(api, intent, 1)
    # Each attempt is stopped at its limit (plus up to one monitoring poll, 5 s) and retried
    # from failure like any failure, up to max_retries 3: four attempts at most. A retry the daemon
    # loses (its event cursor passing monitoring's FAILURE event) is relaunched by the reaper.
    view = _wait_final(api, run_id, 240)
    assert view["status"] == "failed", view
    assert view["failure"]["kind"] == "max_runtime", view
    assert view["failure"]["message"] == "Exceeded maximum runtime of 2 seconds.", view
    # Each attempt ends FAILURE, and is retried, unless the worker's RUN_CANCELED lands after
    # monitoring's failure (a race inside Dagster): that attempt ends CANCELED and is the last.
    statuses = [r["status"] for r in view["dagsterRuns"]]
    assert 1 <= len(statuses) <= 4 and set(statuses[:-1]) <= {"FAILURE"}, view
    assert statuses[-1] in ("FAILURE", "CANCELED") and (len(statuses) == 4 or statuses[-1] == "CANCELED"), view
    assert {s["name"]: s["status"] for s in view["steps"]}["persist"] == "pending", view


def test_one_key_never_runs_more_than_its_limit_and_other_keys_are_not_held_back(
        api: httpx.Client, running_stack: Settings, test_databases: TestDatabases) -> None:
    key_a, key_b = f"caller-a-{secrets.token_hex(3)}", f"caller-b-{secrets.token_hex(3)}"
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_executing(test_databases.dagster_url, key_a))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        a_runs = _submit(api, _sleeping_intent(running_stack, 3, {"concurrency": {"key": key_a, "limit": 2}}), 10)
        b_runs = _submit(api, _sleeping_intent(running_stack, 3, {"concurrency": {"key": key_b, "limit": 2}}), 2)
        b_views = [_wait_final(api, run_id, 120) for run_id in b_runs]
        # Key B finished while key A still had runs waiting in its line: A's line held nothing else back.
        a_statuses = [_view(api, run_id)["status"] for run_id in a_runs]
        a_views = [_wait_final(api, run_id, 300) for run_id in a_runs]
    finally:
        stop.set()
        sampler.join()
    assert [v["status"] for v in b_views] == ["succeeded"] * 2, b_views
    assert "queued" in a_statuses, a_statuses
    assert [v["status"] for v in a_views] == ["succeeded"] * 10, a_views
    assert max(samples) == 2, samples  # the limit, reached and never passed
    with psycopg.connect(test_databases.dagster_url) as conn:
        (limits,) = conn.execute("SELECT array_agg(DISTINCT value) FROM run_tags WHERE key = %s AND run_id IN "
                                 "(SELECT run_id FROM run_tags WHERE key = %s AND value = %s)",
                                 ("harness/concurrency_limit", CONCURRENCY_KEY_TAG, key_a)).fetchone() or (None,)
    assert limits == ["2"]


def test_a_run_held_by_its_key_is_queued_and_cancellable(api: httpx.Client, running_stack: Settings) -> None:
    key = f"caller-c-{secrets.token_hex(3)}"
    first, held = _submit(api, _sleeping_intent(running_stack, 30, {"concurrency": {"key": key, "limit": 1}}), 2)
    view = _view(api, held)
    assert view["status"] == "queued" and view["dagsterRuns"] == [], view
    assert api.post(f"/runs/{held}/cancel").status_code == 202
    assert api.post(f"/runs/{first}/cancel").status_code == 202
    assert _wait_final(api, first, 120)["status"] == "canceled"
    canceled = _view(api, held)
    assert canceled["status"] == "canceled" and canceled["dagsterRuns"] == [], canceled
