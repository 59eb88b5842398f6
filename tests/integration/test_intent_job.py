"""The intent job in process: checkpoints make retries and re-executions skip committed work —
the OC provider (a real HTTP server on loopback, requests counted there) is called once."""

from typing import Any

import psycopg
import pytest
from dagster import instance_for_test

from pipelines.definitions import defs
from pipelines.jobs.intent import run_config as intent_run_config
from pipelines.oc.resource import OCResource
from pipelines.settings import sqlalchemy_psycopg2
from pipelines.store import artifacts, repo
from tests.conftest import TestDatabases
from tests.oc_fake_server import ChatServer, ok

PLAN = {"schemaVersion": "oc-output/1", "summary": "say hi",
        "files": [{"path": "in.txt", "content": "hi\n"}],
        "commands": [{"name": "cat", "run": "cat in.txt", "timeoutMs": 5000}]}


class FlakySandbox:
    """Fails the first job (an infrastructure error), then runs for real."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        from pipelines.sandbox.errors import SandboxError
        from pipelines.sandbox.resource import SandboxResource

        self.calls += 1
        if self.calls == 1:
            raise SandboxError("scripted: the sandbox host went away")
        return SandboxResource().run(job)


def _job():
    return defs.resolve_job_def("intent_job")


def _new_run(app_db_url: str, mode: str) -> str:
    with psycopg.connect(app_db_url, autocommit=True) as conn, conn.transaction():
        intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), idempotency_key=None,
                                          body={"goal": "hi", "inputs": {}, "constraints": {}, "connectors": []})
        run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id="t-1",
                                    options={"oc": {"mode": mode, "seed": 0}}, idempotency_key=None)
    return run_id


@pytest.fixture
def provider():
    with ChatServer([ok(PLAN)]) as server:
        yield server


def test_reexecution_after_oc_committed_does_not_call_the_provider_again(
        provider: ChatServer, app_db_url: str, test_databases: TestDatabases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    run_id = _new_run(app_db_url, "live")
    sandbox = FlakySandbox()
    resources = {"sandbox": sandbox,
                 "oc": OCResource(base_url=provider.base_url, model="fake-model", api_key="test-key", max_retries=0)}
    storage = {"postgres": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}
    with instance_for_test(overrides={"storage": storage}) as instance:
        first = _job().execute_in_process(run_config=intent_run_config(run_id), instance=instance,
                                          tags={"app/run_id": run_id}, resources=resources, raise_on_error=False)
        assert not first.success
        assert len(provider.requests) == 1
        # A second attempt of the whole job (what a daemon retry or an operator re-execution is).
        second = _job().execute_in_process(run_config=intent_run_config(run_id), instance=instance,
                                           tags={"app/run_id": run_id, "dagster/parent_run_id": first.run_id,
                                                 "dagster/root_run_id": first.run_id}, resources=resources)
        assert second.success
    assert len(provider.requests) == 1, "the OC provider was called again for a committed step"
    with psycopg.connect(app_db_url) as conn:
        steps = {s: (st, n) for s, st, n in conn.execute(
            "SELECT step, status, attempts FROM app.run_steps WHERE run_id = %s", (run_id,)).fetchall()}
        names = [r[0] for r in conn.execute("SELECT name FROM app.artifacts WHERE run_id = %s ORDER BY name",
                                            (run_id,)).fetchall()]
    assert steps == {"oc": ("succeeded", 1), "sandbox": ("succeeded", 2), "persist": ("succeeded", 1)}
    assert names == ["plan.json", "result.json", "sandbox/cat/files/in.txt", "sandbox/cat/stdout"]
    with psycopg.connect(app_db_url) as conn:
        types = [a.media_type for a in artifacts.listing(conn, run_id)]
    assert types == ["application/json", "application/json"] + ["text/plain; charset=utf-8"] * 2


def test_oc_failure_is_a_step_failure_that_writes_nothing(app_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    run_id = _new_run(app_db_url, "replay")  # no fixture for this intent: replay refuses to invent one
    result = _job().execute_in_process(run_config=intent_run_config(run_id), raise_on_error=False)
    assert not result.success
    with psycopg.connect(app_db_url) as conn:
        oc = conn.execute("SELECT status, error_kind FROM app.run_steps WHERE run_id = %s AND step = 'oc'",
                          (run_id,)).fetchone()
        artifacts = conn.execute("SELECT count(*) FROM app.artifacts WHERE run_id = %s", (run_id,)).fetchone()
    assert oc == ("failed", "fixture_missing")
    assert artifacts == (0,)


def test_a_text_file_over_the_artifact_cap_fails_the_sandbox_step_naming_it(
        app_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sandbox.config import CollectCaps
    from pipelines.sandbox.resource import SandboxResource

    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    over = CollectCaps.max_content_kb * 1024 + 1
    plan = {**PLAN, "commands": [{"name": "big", "run": f"head -c {over} /dev/zero | tr '\\000' a > big.txt",
                                  "timeoutMs": 20000}]}
    run_id = _new_run(app_db_url, "live")
    with ChatServer([ok(plan)]) as server:
        resources = {"sandbox": SandboxResource(),
                     "oc": OCResource(base_url=server.base_url, model="fake-model", api_key="k", max_retries=0)}
        result = _job().execute_in_process(run_config=intent_run_config(run_id), resources=resources,
                                           raise_on_error=False)
    assert not result.success
    with psycopg.connect(app_db_url) as conn:
        step = conn.execute("SELECT status, error_kind, error FROM app.run_steps WHERE run_id = %s AND step = 'sandbox'",
                            (run_id,)).fetchone()
        names = [r[0] for r in conn.execute("SELECT name FROM app.artifacts WHERE run_id = %s", (run_id,))]
    assert step is not None and step[:2] == ("failed", "artifact_too_large")
    assert f"'big' left 'big.txt' is {over} bytes" in step[2]
    assert names == ["plan.json"]
