"""``run_oc``: the one way an intent becomes a plan, in replay, record or live mode."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import prompt
from .config import ProviderConfig
from .errors import OCError
from .fixture_store import DEFAULT_FIXTURES_DIR, Fixture, fixture_key, read_fixture, write_fixture
from .plan import SCHEMA_VERSION
from .result import MODES, Mode, OCResult


def run_oc(
    intent: Mapping[str, Any],
    mode: Mode = "replay",
    seed: int = 0,
    *,
    provider: ProviderConfig | None = None,
    fixtures_dir: Path = DEFAULT_FIXTURES_DIR,
) -> OCResult:
    """Produce the plan for ``intent``.

    replay: the recorded output for (intent, schemaVersion, seed), or ``FixtureMissing``; never a call.
    record: one provider call, validated, then written as that key's fixture.
    live: one provider call, validated, nothing written.
    """
    if mode not in MODES:
        raise ValueError(f"unknown OC mode {mode!r}; expected one of {', '.join(MODES)}")
    intent = dict(intent)
    key = fixture_key(intent, seed)
    if mode == "replay":
        fixture = read_fixture(fixtures_dir, intent, seed)
        return OCResult(fixture.plan, mode, seed, key, SCHEMA_VERSION, fixture.recorded_from)
    if provider is None:
        raise OCError("not_configured", f"mode {mode} calls a provider: set OC_BASE_URL and OC_MODEL")
    from .provider import complete_plan  # imports openai (~0.8 s): only a run that calls a provider pays it

    plan, meta = complete_plan(provider, prompt.messages(intent), seed=seed)
    if mode == "record":
        write_fixture(fixtures_dir, Fixture(key=key, intent=intent, seed=seed, plan=plan, recorded_from=meta))
    return OCResult(plan, mode, seed, key, SCHEMA_VERSION, meta)
