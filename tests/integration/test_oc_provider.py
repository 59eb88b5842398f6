"""run_oc live and record through the real openai client against a scripted chat-completions server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.oc import DEFAULT_FIXTURES_DIR, OCError, ProviderConfig, fixture_key, run_oc
from pipelines.oc.fixture_store import fixture_path
from tests.oc_fake_server import ChatServer, Reply, completion, ok

pytestmark = pytest.mark.integration

INTENT = {
    "goal": "count the words in a sentence",
    "inputs": {"text": "a b c"},
    "constraints": {},
    "connectors": [],
}
PLAN: dict[str, Any] = {
    "schemaVersion": "oc-output/1",
    "summary": "Count the words of the given text.",
    "files": [{"path": "text.txt", "content": "a b c\n"}],
    "commands": [{"name": "count", "run": "wc -w text.txt", "timeoutMs": 2000}],
}
API_KEY = "sk-test-never-shown"


def config(server: ChatServer, **overrides: Any) -> ProviderConfig:
    settings: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "fake-model",
        "api_key": API_KEY,
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    settings.update(overrides)
    return ProviderConfig(**settings)


def live_error(server: ChatServer, tmp_path: Path, **overrides: Any) -> OCError:
    with pytest.raises(OCError) as caught:
        run_oc(INTENT, "live", 0, provider=config(server, **overrides), fixtures_dir=tmp_path)
    assert server.problems == []
    assert list(tmp_path.iterdir()) == []
    return caught.value


def test_live_success_sends_our_contract_and_keeps_secrets_out(tmp_path: Path) -> None:
    with ChatServer([ok(PLAN)]) as server:
        result = run_oc(INTENT, "live", 7, provider=config(server), fixtures_dir=tmp_path)
    assert server.problems == []
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["model"] == "fake-model"
    assert request["seed"] == 7
    assert request["response_format"]["json_schema"]["strict"] is True
    assert json.loads(request["messages"][-1]["content"]) == INTENT
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"
    assert result.plan == PLAN
    meta = result.meta()
    assert list(meta) == [
        "mode", "seed", "fixtureKey", "schemaVersion", "provider", "host", "model",
        "requestId", "latencyMs", "usage", "finishReason", "dialect",
    ]  # fmt: skip
    assert {k: v for k, v in meta.items() if k != "latencyMs"} == {
        "mode": "live",
        "seed": 7,
        "fixtureKey": fixture_key(INTENT, 7),
        "schemaVersion": "oc-output/1",
        "provider": "openai-compatible",
        "host": "127.0.0.1",
        "model": "fake-model-2025",
        "requestId": "req_fake_1",
        "usage": {"promptTokens": 120, "completionTokens": 80, "totalTokens": 200},
        "finishReason": "stop",
        "dialect": "openai",
    }
    assert isinstance(meta["latencyMs"], int)
    dumped = json.dumps(result.as_dict())
    assert API_KEY not in dumped and "planning step" not in dumped  # no key, no prompt
    assert API_KEY not in repr(config(server))
    assert list(tmp_path.iterdir()) == []  # live writes nothing


def test_429_then_success_retries_once(tmp_path: Path) -> None:
    throttled = Reply(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "0"})
    with ChatServer([throttled, ok(PLAN)]) as server:
        result = run_oc(INTENT, "live", 0, provider=config(server), fixtures_dir=tmp_path)
    assert server.problems == []
    assert len(server.requests) == 2
    assert result.plan == PLAN


def test_500s_exhaust_the_retry_budget(tmp_path: Path) -> None:
    boom = Reply(status=500, body={"error": {"message": "upstream exploded"}})
    with ChatServer([boom, boom, boom, ok(PLAN)]) as server:
        error = live_error(server, tmp_path, max_retries=2)
    assert len(server.requests) == 3
    assert error.kind == "retries_exhausted"
    assert "3 attempts" in str(error) and "HTTP 500" in str(error)
    assert error.detail is not None and "upstream exploded" in error.detail


def test_timeouts_are_retried_then_fail(tmp_path: Path) -> None:
    slow = Reply(body=completion(json.dumps(PLAN)), delay_s=5.0)
    with ChatServer([slow, slow]) as server:
        error = live_error(server, tmp_path, timeout_s=0.3, max_retries=1)
    # Both attempts timed out (the plan arrived after 5 s each time): the kind and cause say so.
    assert len(server.requests) == 2
    assert error.kind == "retries_exhausted"
    assert "APITimeoutError" in str(error)


def test_non_retryable_status_fails_at_once_with_the_providers_words(tmp_path: Path) -> None:
    bad = Reply(status=400, body={"error": {"message": "response_format json_schema is not supported"}})
    with ChatServer([bad, ok(PLAN)]) as server:
        error = live_error(server, tmp_path)
    assert len(server.requests) == 1
    assert error.kind == "provider_error"
    assert "HTTP 400" in str(error) and "not supported" in str(error)


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        pytest.param(
            Reply(body=completion(None, refusal="I can't help with that request.")),
            "refusal",
            "I can't help with that request.",
            id="refusal",
        ),
        pytest.param(Reply(body=completion('{"schemaVersion": "oc-out')), "not_json", '{"schemaVersion": "oc-out', id="malformed-json"),
        pytest.param(
            Reply(body=completion('{"schemaVersion":"oc-output/1","summary":"x","files":[],"commands":[{"name":"a","run":"ls"')),
            "not_json",
            '"run":"ls"',
            id="cut-off-json-with-stop",
        ),
        pytest.param(
            Reply(body=completion('{"schemaVersion":"oc-output/1","summary":"x","files":[],"com', finish_reason="length")),
            "truncated",
            '"summary":"x"',
            id="truncated-length",
        ),
        pytest.param(
            Reply(body="<html><body>502 Bad Gateway from proxy</body></html>", content_type="text/html"),
            "bad_response",
            "502 Bad Gateway from proxy",
            id="wrong-content-type",
        ),
        pytest.param(Reply(body={"id": "x", "object": "chat.completion", "choices": []}), "bad_response", '"choices": []', id="no-choices"),
        pytest.param(Reply(body="Internal proxy error"), "bad_response", "Internal proxy error", id="json-content-type-non-json-body"),
    ],
)  # fmt: skip
def test_unusable_output_is_a_step_failure_keeping_the_providers_words(
    tmp_path: Path, reply: Reply, kind: str, words: str
) -> None:
    with ChatServer([reply, ok(PLAN)]) as server:
        error = live_error(server, tmp_path)
    assert len(server.requests) == 1  # never retried: asking again would not fix it
    assert error.kind == kind
    assert error.detail is not None and words in error.detail


def test_schema_violating_output_lists_the_violations(tmp_path: Path) -> None:
    escaping = {**PLAN, "files": [{"path": "../outside.txt", "content": "x"}], "extra": 1}
    with ChatServer([ok(escaping)]) as server:
        error = live_error(server, tmp_path)
    assert error.kind == "schema_violation"
    assert [v.pointer for v in error.violations] == ["", "/files/0/path"]
    assert error.detail == json.dumps(escaping)


def test_record_writes_a_canonical_fixture_that_replays_and_rerecords_as_a_no_op(tmp_path: Path) -> None:
    with ChatServer([ok(PLAN), ok(PLAN)]) as server:
        recorded = run_oc(INTENT, "record", 3, provider=config(server), recordings_dir=tmp_path)
        path = fixture_path(tmp_path, recorded.fixture_key)
        first = path.read_bytes()
        rerecorded = run_oc(INTENT, "record", 3, provider=config(server), recordings_dir=tmp_path)
    assert server.problems == []
    assert len(server.requests) == 2
    assert rerecorded.plan == recorded.plan
    assert path.read_bytes() == first
    doc = json.loads(first)
    assert first.decode() == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert doc["intent"] == INTENT and doc["seed"] == 3 and doc["fixtureKey"] == recorded.fixture_key

    replayed = run_oc(INTENT, "replay", 3, fixtures_dir=tmp_path)
    assert replayed.plan == PLAN
    assert {**replayed.meta(), "mode": "record"} == recorded.meta()


def test_record_writes_nothing_when_the_output_is_invalid(tmp_path: Path) -> None:
    with ChatServer([ok({**PLAN, "commands": []})]) as server:
        with pytest.raises(OCError) as caught:
            run_oc(INTENT, "record", 0, provider=config(server), recordings_dir=tmp_path)
    assert caught.value.kind == "schema_violation"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def shipped() -> Iterator[list[tuple[str, bytes]]]:
    """The package's fixtures, put back afterwards: on a tree where record writes there, the test
    that catches it must not leave the checkout damaged."""
    before = sorted((p.name, p.read_bytes()) for p in DEFAULT_FIXTURES_DIR.iterdir())
    yield before
    for path in DEFAULT_FIXTURES_DIR.iterdir():
        path.unlink()
    for name, content in before:
        (DEFAULT_FIXTURES_DIR / name).write_bytes(content)


def test_record_writes_only_to_the_recordings_dir_never_into_the_package(
        tmp_path: Path, shipped: list[tuple[str, bytes]]) -> None:
    demo = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}  # the shipped fixture's intent
    recordings = tmp_path / "oc-fixtures"
    with ChatServer([ok(PLAN), ok(PLAN)]) as server:
        with pytest.raises(OCError) as caught:  # no recordings dir: record has nowhere to write
            run_oc(demo, "record", 0, provider=config(server))
        assert caught.value.kind == "not_configured" and server.requests == []
        recorded = run_oc(demo, "record", 0, provider=config(server), recordings_dir=recordings)
    assert sorted((p.name, p.read_bytes()) for p in DEFAULT_FIXTURES_DIR.iterdir()) == shipped
    assert [p.name for p in recordings.iterdir()] == [f"{recorded.fixture_key}.json"]

    # Replay reads the package first: a recording cannot shadow a shipped fixture ...
    assert run_oc(demo, "replay", 0, recordings_dir=recordings).plan != PLAN
    # ... and falls back to the recordings for keys the package lacks.
    with ChatServer([ok(PLAN)]) as server:
        run_oc(INTENT, "record", 5, provider=config(server), recordings_dir=recordings)
    assert run_oc(INTENT, "replay", 5, recordings_dir=recordings).plan == PLAN


def test_refresh_with_the_reference_planner_reproduces_the_shipped_fixtures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import oc_refresh

    for shipped in DEFAULT_FIXTURES_DIR.glob("*.json"):
        (tmp_path / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.delenv("OC_BASE_URL", raising=False)
    monkeypatch.setattr("sys.argv", ["oc_refresh", "--fixtures-dir", str(tmp_path)])
    assert oc_refresh.main() == 0
    assert "reference planner (rule-based, not a language model)" in capsys.readouterr().out
    for shipped in DEFAULT_FIXTURES_DIR.glob("*.json"):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes()
    demo = json.loads(fixture_path(tmp_path, fixture_key(oc_refresh.DEMO_INTENT, 0)).read_text())
    assert demo["recordedFrom"]["model"] == "reference-planner-rule-based-not-an-llm"
    assert demo["plan"]["summary"].startswith("Reference plan (rule-based, not a language model)")
