"""Recorded OC outputs on disk, one canonical JSON file per sha256(intent, schemaVersion, seed)."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contracts
from pipelines.settings import REPO_ROOT

from .errors import FixtureMissing, OCError
from .plan import SCHEMA_VERSION, validate_plan
from .result import ProviderMeta

DEFAULT_FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
REFRESH_MODULE = "scripts.oc_refresh"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fixture_key(intent: Any, seed: int, schema_version: str = SCHEMA_VERSION) -> str:
    material = {"intent": intent, "schemaVersion": schema_version, "seed": seed}
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def fixture_path(fixtures_dir: Path, key: str) -> Path:
    return fixtures_dir / f"{key}.json"


def _shown(path: Path) -> str:
    """A path as messages show it: relative to the checkout when inside it, so a step error (and
    the RunView that carries it) reads the same on every machine."""
    return str(path.resolve().relative_to(REPO_ROOT)) if path.resolve().is_relative_to(REPO_ROOT) else str(path)


def record_command(intent: Any, seed: int, fixtures_dir: Path) -> str:
    argv = [".venv/bin/python", "-m", REFRESH_MODULE, "--intent", canonical_json(intent), "--seed", str(seed)]
    if fixtures_dir.resolve() != DEFAULT_FIXTURES_DIR:
        argv += ["--fixtures-dir", _shown(fixtures_dir)]
    return shlex.join(argv)


@dataclass(frozen=True)
class Fixture:
    key: str
    intent: Any
    seed: int
    plan: dict[str, Any]
    recorded_from: ProviderMeta

    def document(self) -> dict[str, Any]:
        return {
            "fixtureKey": self.key,
            "intent": self.intent,
            "plan": self.plan,
            "recordedFrom": self.recorded_from.as_dict(),
            "schemaVersion": SCHEMA_VERSION,
            "seed": self.seed,
        }

    def text(self) -> str:
        # Pretty but canonical: sorted keys and a trailing newline make re-recording a no-op diff.
        return json.dumps(self.document(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def read_fixture(fixtures_dir: Path, intent: Any, seed: int) -> Fixture:
    key = fixture_key(intent, seed)
    path = fixture_path(fixtures_dir, key)
    if not path.is_file():
        raise FixtureMissing(
            key,
            f"no recorded OC output {key} in {_shown(fixtures_dir)} for intent {canonical_json(intent)} "
            f"with seed {seed} and schemaVersion {SCHEMA_VERSION}; replay never calls a provider. "
            f"Record it (OC_BASE_URL/OC_MODEL if set, else the rule-based reference planner) with: "
            f"{record_command(intent, seed, fixtures_dir)}",
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        recorded_key = fixture_key(doc["intent"], doc["seed"], doc["schemaVersion"])
        if recorded_key != key:
            raise ValueError(f"it records the output for key {recorded_key}")
        plan = validate_plan(doc["plan"])
        recorded_from = ProviderMeta.from_dict(doc["recordedFrom"])
    except contracts.ContractViolation as exc:
        raise OCError("fixture_invalid", f"{path}: {exc}", violations=exc.violations) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise OCError("fixture_invalid", f"{path}: {exc!r}") from exc
    return Fixture(key=key, intent=doc["intent"], seed=seed, plan=plan, recorded_from=recorded_from)


def write_fixture(fixtures_dir: Path, fixture: Fixture) -> bool:
    """Write ``fixture`` unless the file already holds the same plan from the same provider and model.

    Request id and latency differ on every call, so rewriting them would turn re-recording an unchanged
    output into a diff; the first recording stays the evidence. Returns whether the file changed.
    """
    path = fixture_path(fixtures_dir, fixture.key)
    if _same_recording(path, fixture):
        return False
    fixtures_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(fixture.text(), encoding="utf-8")
    tmp.replace(path)
    return True


def _same_recording(path: Path, fixture: Fixture) -> bool:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_source = {k: old["recordedFrom"][k] for k in ("provider", "host", "model")}
        same_plan = old["plan"] == fixture.plan
    except (OSError, ValueError, KeyError, TypeError):
        return False  # absent or unreadable: write a fresh one
    new_source = {k: fixture.recorded_from.as_dict()[k] for k in ("provider", "host", "model")}
    return same_plan and old_source == new_source
