"""The embedded model server's description: where its weights are, its port, what it is started with."""

from __future__ import annotations

import pytest

from pipelines.oc import localmodel
from pipelines.settings import load
from scripts.stack import wants_model


def test_the_weights_ship_in_the_installed_package() -> None:
    path = localmodel.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert path.read_bytes()[:4] == b"GGUF"


def test_its_port_follows_port_and_its_command_binds_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OC_MODEL_PORT", "OC_MODEL_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "3211")
    settings = load()
    assert settings.oc_model_port == 6211 and settings.oc_model_url == "http://127.0.0.1:6211/v1"
    argv = localmodel.argv(settings)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "6211"
    assert argv[argv.index("--model_alias") + 1] == localmodel.MODEL_ID
    monkeypatch.setenv("OC_MODEL_PORT", "7001")
    assert load().oc_model_port == 7001


def test_the_server_gets_no_variable_its_settings_would_read_over_the_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"PATH": "/usr/bin", "HOME": "/root", "PORT": "3211", "HOST": "0.0.0.0", "API_KEY": "k", "MODEL": "x",
            "OC_API_KEY": "sk-secret", "N_THREADS": "64"}
    env = localmodel.env(base, load())
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "OMP_WAIT_POLICY": "PASSIVE",
                   "OMP_NUM_THREADS": str(load().oc_model_threads), "PYTHONUNBUFFERED": "1"}


def test_the_stack_starts_the_model_only_when_live_or_record_may_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OC_BASE_URL", raising=False)
    monkeypatch.delenv("HARNESS_OC_MODES", raising=False)
    assert not wants_model(load())  # replay only
    monkeypatch.setenv("HARNESS_OC_MODES", "replay,live")
    assert wants_model(load())
    monkeypatch.setenv("HARNESS_OC_MODES", "record")
    assert wants_model(load())
    monkeypatch.setenv("OC_BASE_URL", "https://api.example.test/v1")  # another provider wins
    assert not wants_model(load())
