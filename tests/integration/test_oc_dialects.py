"""Provider dialects through the real openai client against the scripted chat-completions server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.oc import OCError, run_oc
from pipelines.oc.dialect import response_format as dialect_format
from pipelines.oc.plan import RESPONSE_FORMAT_NAME, response_format, wire_schema
from tests.integration.test_oc_provider import INTENT, PLAN, config
from tests.oc_fake_server import ChatServer, Reply, completion, ok

pytestmark = pytest.mark.integration

LLAMA_CPP_FORMAT = dialect_format("llama-cpp", wire_schema(), RESPONSE_FORMAT_NAME)[0]
# llama-cpp-python 0.3.36's answer to the openai form (measured; abbreviated).
REFUSAL = Reply(status=500, body={"error": {"message": "[{'type': 'literal_error', 'loc': ('body', "
                                            "'response_format', 'type'), 'msg': \"Input should be 'text' or "
                                            "'json_object'\", 'input': 'json_schema'}]"}})


def test_the_llama_cpp_dialect_sends_json_object_with_the_translated_schema_and_max_tokens(tmp_path: Path) -> None:
    with ChatServer([ok(PLAN)], formats=[LLAMA_CPP_FORMAT]) as server:
        result = run_oc(INTENT, "live", 0, provider=config(server, dialect="llama-cpp", max_tokens=300),
                        fixtures_dir=tmp_path)
    assert server.problems == []
    assert server.requests[0]["max_tokens"] == 300
    assert result.plan == PLAN and result.provider.dialect == "llama-cpp"
    assert result.meta()["dialect"] == "llama-cpp"


def test_auto_discovers_llama_cpp_from_its_refusal_and_counts_no_failure(tmp_path: Path) -> None:
    with ChatServer([REFUSAL, ok(PLAN)], formats=[response_format(), LLAMA_CPP_FORMAT]) as server:
        result = run_oc(INTENT, "live", 0, provider=config(server, dialect="auto", max_retries=0),
                        fixtures_dir=tmp_path)
    assert server.problems == []
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]
    assert result.provider.dialect == "llama-cpp"
    assert "max_tokens" not in server.requests[0]  # unset elsewhere: the provider's default


def test_a_forced_openai_dialect_does_not_switch(tmp_path: Path) -> None:
    with ChatServer([REFUSAL], formats=[response_format()]) as server, pytest.raises(OCError) as caught:
        run_oc(INTENT, "live", 0, provider=config(server, dialect="openai", max_retries=0), fixtures_dir=tmp_path)
    assert caught.value.kind == "retries_exhausted" and len(server.requests) == 1


def test_what_the_grammar_relaxed_fails_the_contract_visibly(tmp_path: Path) -> None:
    blank = {**PLAN, "summary": "   "}  # the grammar admitted it (pattern dropped); the contract does not
    with ChatServer([ok(blank)], formats=[LLAMA_CPP_FORMAT]) as server, pytest.raises(OCError) as caught:
        run_oc(INTENT, "live", 0, provider=config(server, dialect="llama-cpp"), fixtures_dir=tmp_path)
    assert caught.value.kind == "schema_violation"
    assert "did not enforce: /properties/summary/pattern" in caught.value.message
    assert [v.pointer for v in caught.value.violations] == ["/summary"]


def test_truncation_names_the_token_limit(tmp_path: Path) -> None:
    cut = Reply(body=completion(json.dumps(PLAN)[:40], finish_reason="length"))
    with ChatServer([cut], formats=[LLAMA_CPP_FORMAT]) as server, pytest.raises(OCError) as caught:
        run_oc(INTENT, "live", 0, provider=config(server, dialect="llama-cpp", max_tokens=64), fixtures_dir=tmp_path)
    assert caught.value.kind == "truncated" and "max_tokens=64" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_the_embedded_server_down_is_a_step_error_saying_how_to_start_it(tmp_path: Path) -> None:
    import socket

    from pipelines.oc import ProviderConfig, localmodel

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", model=localmodel.MODEL_ID, dialect="llama-cpp",
                              max_retries=0, timeout_s=5.0)
    with pytest.raises(OCError) as caught:
        run_oc(INTENT, "live", 0, provider=provider, fixtures_dir=tmp_path)
    assert caught.value.kind == "retries_exhausted" and "mise run model:up" in caught.value.message
