"""Replay mode: recorded output or a clear FixtureMissing, never a provider call or an invented plan."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import pytest

from pipelines.oc import DEFAULT_FIXTURES_DIR, FixtureMissing, OCError, ProviderConfig, fixture_key, run_oc
from pipelines.oc.fixture_store import Fixture, fixture_path, write_fixture
from pipelines.oc.result import ProviderMeta, Usage
from tests.oc_samples import DEMO, PLAN

META = ProviderMeta("openai-compatible", "api.example.test", "m-1", "req_1", 420, Usage(1, 2, 3), "stop")


def closed_port_provider() -> ProviderConfig:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", model="never-called", max_retries=0)


def test_shipped_demo_fixture_replays_byte_stably() -> None:
    first = run_oc(DEMO, "replay", 0)
    second = run_oc(dict(reversed(DEMO.items())), seed=0)
    assert json.dumps(first.as_dict()) == json.dumps(second.as_dict())
    meta = first.meta()
    assert meta["mode"] == "replay"
    assert meta["fixtureKey"] == fixture_key(DEMO, 0)
    assert meta["model"] == "reference-planner-rule-based-not-an-llm"  # says what recorded it
    assert meta["provider"] == "openai-compatible" and meta["host"] == "127.0.0.1"
    assert [c["run"] for c in first.plan["commands"]] == ["wc -c goal.txt", "sha256sum goal.txt"]
    assert first.plan["files"] == [{"path": "goal.txt", "content": "demo\n"}]


def test_every_shipped_fixture_is_canonical_and_named_by_its_key() -> None:
    shipped = sorted(DEFAULT_FIXTURES_DIR.glob("*.json"))
    assert shipped
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
        assert text == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert path.stem == doc["fixtureKey"] == fixture_key(doc["intent"], doc["seed"])
        assert run_oc(doc["intent"], "replay", doc["seed"]).plan == doc["plan"]


def test_missing_fixture_names_the_key_and_the_recording_command(tmp_path: Path) -> None:
    intent = {"goal": "nobody's recorded this", "inputs": {}, "constraints": {}, "connectors": []}
    with pytest.raises(FixtureMissing) as caught:
        run_oc(intent, "replay", 5, provider=closed_port_provider(), fixtures_dir=tmp_path)
    error = caught.value
    key = fixture_key(intent, 5)
    assert error.kind == "fixture_missing" and error.key == key
    assert key in str(error)
    command = str(error).split("with: ", 1)[1]
    assert shlex.split(command) == [
        ".venv/bin/python", "-m", "scripts.oc_refresh",
        "--intent", '{"connectors":[],"constraints":{},"goal":"nobody\'s recorded this","inputs":{}}',
        "--seed", "5", "--fixtures-dir", str(tmp_path),
    ]  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_missing_fixture_in_the_shipped_dir_needs_no_fixtures_dir_flag() -> None:
    with pytest.raises(FixtureMissing) as caught:
        run_oc(DEMO, "replay", 999)
    assert str(caught.value).endswith("--seed 999")


def test_replay_returns_the_recorded_metadata(tmp_path: Path) -> None:
    key = fixture_key(DEMO, 1)
    assert write_fixture(tmp_path, Fixture(key, DEMO, 1, PLAN, META))
    result = run_oc(DEMO, "replay", 1, fixtures_dir=tmp_path)
    assert result.as_dict() == {
        "plan": PLAN,
        "meta": {
            "mode": "replay",
            "seed": 1,
            "fixtureKey": key,
            "schemaVersion": "oc-output/1",
            "provider": "openai-compatible",
            "host": "api.example.test",
            "model": "m-1",
            "requestId": "req_1",
            "latencyMs": 420,
            "usage": {"promptTokens": 1, "completionTokens": 2, "totalTokens": 3},
            "finishReason": "stop",
        },
    }


def test_rewriting_the_same_output_is_a_no_op(tmp_path: Path) -> None:
    key = fixture_key(DEMO, 0)
    assert write_fixture(tmp_path, Fixture(key, DEMO, 0, PLAN, META))
    before = fixture_path(tmp_path, key).read_bytes()
    other_call = ProviderMeta(
        "openai-compatible", "api.example.test", "m-1", "req_2", 9, Usage(1, 2, 3), "stop"
    )
    assert not write_fixture(tmp_path, Fixture(key, DEMO, 0, PLAN, other_call))
    assert fixture_path(tmp_path, key).read_bytes() == before
    changed = {**PLAN, "summary": "Say hello twice."}
    assert write_fixture(tmp_path, Fixture(key, DEMO, 0, changed, other_call))
    assert json.loads(fixture_path(tmp_path, key).read_text())["plan"] == changed


def test_a_tampered_fixture_is_refused(tmp_path: Path) -> None:
    key = fixture_key(DEMO, 0)
    write_fixture(tmp_path, Fixture(key, DEMO, 0, PLAN, META))
    path = fixture_path(tmp_path, key)
    doc = json.loads(path.read_text())
    doc["plan"]["files"] = [{"path": "/etc/passwd", "content": ""}]
    path.write_text(json.dumps(doc))
    with pytest.raises(OCError) as caught:
        run_oc(DEMO, "replay", 0, fixtures_dir=tmp_path)
    assert caught.value.kind == "fixture_invalid"
    assert [v.pointer for v in caught.value.violations] == ["/files/0/path"]

    doc["plan"] = PLAN
    doc["seed"] = 4  # a fixture for another key copied under this name
    path.write_text(json.dumps(doc))
    with pytest.raises(OCError, match="fixture_invalid"):
        run_oc(DEMO, "replay", 0, fixtures_dir=tmp_path)


def test_modes_that_call_need_a_provider_and_unknown_modes_are_refused(tmp_path: Path) -> None:
    for mode in ("record", "live"):
        with pytest.raises(OCError) as caught:
            run_oc(DEMO, mode, 0, fixtures_dir=tmp_path)
        assert caught.value.kind == "not_configured"
    with pytest.raises(ValueError, match="unknown OC mode 'stub'"):
        run_oc(DEMO, "stub", 0)  # type: ignore[arg-type]
