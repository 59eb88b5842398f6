"""``run_oc``: the one way an intent becomes a plan, in replay, record or live mode."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import prompt
from .config import ProviderConfig
from .errors import FixtureMissing, OCError
from .fixture_store import (
    DEFAULT_FIXTURES_DIR,
    Fixture,
    fixture_key,
    fixture_path,
    read_fixture,
    write_fixture,
)
from .plan import SCHEMA_VERSION
from .result import MODES, Mode, OCResult


def run_oc(
    intent: Mapping[str, Any],
    mode: Mode = "replay",
    seed: int = 0,
    *,
    provider: ProviderConfig | None = None,
    fixtures_dir: Path = DEFAULT_FIXTURES_DIR,
    recordings_dir: Path | None = None,
) -> OCResult:
    """Produce the plan for ``intent``.

    replay: the recorded output for (intent, schemaVersion, seed) from ``fixtures_dir``, else from
    ``recordings_dir``, else ``FixtureMissing``; never a call. The fixtures dir goes first so a
    recording can never change what a shipped fixture replays.
    record: one provider call, validated, then written as that key's fixture in ``recordings_dir``
    (the server's data dir; only ``scripts.oc_refresh`` passes the package's fixtures dir).
    live: one provider call, validated, nothing written.
    """
    if mode not in MODES:
        raise ValueError(f"unknown OC mode {mode!r}; expected one of {', '.join(MODES)}")
    intent = dict(intent)
    key = fixture_key(intent, seed)
    if mode == "replay":
        fixture = _replay(intent, seed, fixtures_dir, recordings_dir)
        return OCResult(fixture.plan, mode, seed, key, SCHEMA_VERSION, fixture.recorded_from)
    if provider is None:
        raise OCError("not_configured", f"mode {mode} calls a provider: set OC_BASE_URL and OC_MODEL")
    if mode == "record" and recordings_dir is None:
        raise OCError("not_configured", "mode record has no recordings dir to write to")
    from .provider import complete_plan  # imports openai (~0.8 s): only a run that calls a provider pays it

    plan, meta = complete_plan(provider, prompt.messages(intent), seed=seed)
    if mode == "record" and recordings_dir is not None:
        write_fixture(recordings_dir, Fixture(key=key, intent=intent, seed=seed, plan=plan, recorded_from=meta))
    return OCResult(plan, mode, seed, key, SCHEMA_VERSION, meta)


def _replay(intent: dict[str, Any], seed: int, fixtures_dir: Path, recordings_dir: Path | None) -> Fixture:
    try:
        return read_fixture(fixtures_dir, intent, seed)
    except FixtureMissing:
        if recordings_dir is None or not fixture_path(recordings_dir, fixture_key(intent, seed)).is_file():
            raise  # the message names the fixtures dir and how to record into it
    return read_fixture(recordings_dir, intent, seed)
