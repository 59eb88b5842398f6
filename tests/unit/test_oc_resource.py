"""The Dagster resources: OCResource wraps run_oc; ScriptedOC is an honest, contract-checked double."""

from __future__ import annotations

import random
from typing import Any

import pytest
from dagster import EnvVar, job, op

from pipelines.oc import OCError, ProviderConfig, fixture_key, localmodel
from pipelines.oc.provider import _backoff_s
from pipelines.oc.resource import OCResource, ScriptedOC
from pipelines.settings import load
from tests.oc_samples import DEMO, PLAN


def test_oc_resource_replays_by_default() -> None:
    result = OCResource().produce(DEMO)
    assert result.mode == "replay" and result.fixture_key == fixture_key(DEMO, 0)


def test_oc_resource_in_a_job_reads_the_key_from_env_at_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OC_API_KEY", "sk-from-env")

    @op
    def plan(oc: OCResource) -> dict[str, Any]:
        assert oc.api_key == "sk-from-env"
        return oc.produce(DEMO).meta()

    @job
    def produce_demo() -> None:
        plan()

    run = produce_demo.execute_in_process(
        resources={
            "oc": OCResource(api_key=EnvVar("OC_API_KEY"), base_url="http://127.0.0.1:9/v1", model="m")
        }
    )
    assert run.success
    assert run.output_for_node("plan")["fixtureKey"] == fixture_key(DEMO, 0)


def test_oc_resource_builds_the_provider_config_only_when_named() -> None:
    assert OCResource(mode="live").provider_config() is None
    with pytest.raises(OCError, match="not_configured"):
        OCResource(mode="live").produce(DEMO)
    config = OCResource(
        base_url="https://api.example.test/v1", model="m", api_key="", timeout_s=5
    ).provider_config()
    assert config == ProviderConfig(
        base_url="https://api.example.test/v1", model="m", api_key=None, timeout_s=5
    )


def test_scripted_oc_hands_out_its_plans_once_each_and_says_what_it_is() -> None:
    second = {**PLAN, "summary": "Say hello again."}
    oc = ScriptedOC(plans=[PLAN, second], seed=2)
    first = oc.produce(DEMO)
    assert first.plan == PLAN
    assert first.meta() == {
        "mode": "scripted",
        "seed": 2,
        "fixtureKey": fixture_key(DEMO, 2),
        "schemaVersion": "oc-output/1",
        "provider": "scripted",
        "host": None,
        "model": None,
        "requestId": None,
        "latencyMs": 0,
        "usage": None,
        "finishReason": None,
    }
    assert oc.produce(DEMO).plan == second
    with pytest.raises(OCError, match="script_exhausted"):
        oc.produce(DEMO)
    assert oc.calls == 2


def test_scripted_oc_checks_its_plans_against_the_contract() -> None:
    with pytest.raises(OCError) as caught:
        ScriptedOC(plans=[{**PLAN, "commands": []}]).produce(DEMO)
    assert caught.value.kind == "schema_violation"
    assert [v.pointer for v in caught.value.violations] == ["/commands"]


def test_provider_config_from_settings_says_what_is_missing_and_hides_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OC_BASE_URL", "OC_MODEL", "OC_DIALECT", "OC_MAX_TOKENS", "OC_MODEL_PORT", "PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OC_API_KEY", "sk-x")
    # Nothing configured: the embedded model server, in its dialect, on PORT+3000, with a token cap.
    embedded = ProviderConfig.from_settings(load())
    assert (embedded.base_url, embedded.model, embedded.dialect, embedded.max_tokens, embedded.api_key) == (
        "http://127.0.0.1:6001/v1", localmodel.MODEL_ID, "llama-cpp", localmodel.DEFAULT_MAX_TOKENS, None)
    monkeypatch.setenv("OC_MODEL", "gpt-4o-mini")  # a model the embedded server does not serve
    with pytest.raises(OCError, match="without OC_BASE_URL"):
        ProviderConfig.from_settings(load())
    monkeypatch.delenv("OC_MODEL")
    monkeypatch.setenv("OC_BASE_URL", "https://api.example.test/v1")
    with pytest.raises(OCError) as caught:
        ProviderConfig.from_settings(load())
    assert "set OC_MODEL with OC_BASE_URL" in str(caught.value)
    for name, value in {"OC_BASE_URL": "https://user:pw@api.example.test:8443/v1", "OC_MODEL": "m",
                        "OC_TIMEOUT_S": "2.5", "OC_MAX_RETRIES": "1"}.items():
        monkeypatch.setenv(name, value)
    config = ProviderConfig.from_settings(load())
    assert (config.timeout_s, config.max_retries, config.api_key) == (2.5, 1, "sk-x")
    assert (config.dialect, config.max_tokens) == ("auto", None)  # elsewhere: discovered, provider's default
    assert config.host == "api.example.test"
    assert "sk-x" not in repr(config)


def test_backoff_is_seeded_bounded_and_honours_retry_after() -> None:
    config = ProviderConfig(base_url="http://127.0.0.1/v1", model="m", backoff_s=0.5, backoff_cap_s=8.0)
    delays = [_backoff_s(config, attempt, random.Random(0), None) for attempt in range(8)]
    assert delays == [_backoff_s(config, attempt, random.Random(0), None) for attempt in range(8)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert _backoff_s(config, 0, random.Random(0), 3.0) == 3.0
    assert _backoff_s(config, 0, random.Random(0), 120.0) == 8.0
