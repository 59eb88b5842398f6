"""Re-record the OC replay fixtures (record mode), so tests and the demo replay real provider output.

Records every fixture already in the fixtures dir (each carries its intent and seed) plus the demo
intent, or just the one given with --intent/--seed. Talks to OC_BASE_URL/OC_MODEL when set; otherwise it
starts the rule-based reference planner on a free loopback port and records from it, and the fixture's
recordedFrom says so. A re-recording that yields the same plan from the same provider leaves the file as is.

    .venv/bin/python -m scripts.oc_refresh
    .venv/bin/python -m scripts.oc_refresh --intent '{"goal":"x","inputs":{},"constraints":{},"connectors":[]}' --seed 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.oc import DEFAULT_FIXTURES_DIR, SCHEMA_VERSION, OCError, ProviderConfig, canonical_json, run_oc
from pipelines.oc.fixture_store import fixture_path
from pipelines.settings import load
from scripts import oc_reference_provider

DEMO_INTENT: dict[str, Any] = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}


def targets(fixtures_dir: Path) -> list[tuple[dict[str, Any], int]]:
    """The demo intent plus every (intent, seed) already recorded, once each, in a stable order."""
    found = {canonical_json([DEMO_INTENT, 0]): (DEMO_INTENT, 0)}
    for path in sorted(fixtures_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc["schemaVersion"] != SCHEMA_VERSION:
            print(f"stale (schemaVersion {doc['schemaVersion']}): {path}; delete it once nothing replays it")
        found.setdefault(canonical_json([doc["intent"], doc["seed"]]), (doc["intent"], doc["seed"]))
    return [found[k] for k in sorted(found)]


def record(provider: ProviderConfig, fixtures_dir: Path, todo: list[tuple[dict[str, Any], int]]) -> None:
    for intent, seed in todo:
        # The one place a recording lands in the package's fixtures: this script, run on purpose.
        result = run_oc(intent, "record", seed, provider=provider, fixtures_dir=fixtures_dir,
                        recordings_dir=fixtures_dir)
        path = fixture_path(fixtures_dir, result.fixture_key)
        print(f"{path}  seed={seed}  intent={canonical_json(intent)}  model={result.provider.model}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--intent", type=json.loads, help="record only this intent (JSON object)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixtures-dir", type=Path, default=DEFAULT_FIXTURES_DIR)
    args = parser.parse_args()
    todo = [(args.intent, args.seed)] if args.intent is not None else targets(args.fixtures_dir)
    try:
        settings = load()
        if settings.oc_base_url:
            provider = ProviderConfig.from_settings(settings)
            print(f"recording from {provider.base_url} model {provider.model}")
            record(provider, args.fixtures_dir, todo)
        else:
            server, base_url = oc_reference_provider.start()
            print(
                f"OC_BASE_URL not set: recording from the reference planner (rule-based, not a language model) at {base_url}"
            )
            try:
                record(
                    ProviderConfig(base_url=base_url, model=oc_reference_provider.MODEL),
                    args.fixtures_dir,
                    todo,
                )
            finally:
                server.shutdown()
                server.server_close()
    except OCError as exc:
        print(f"oc_refresh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
