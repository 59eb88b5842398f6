"""Record one OC fixture from a real model (record mode), into the package's fixtures by default.

The provider is OC_BASE_URL/OC_MODEL when set, else the embedded model server (started for the call
when down). The fixture's ``recordedFrom`` names the model that made it. `mise run oc:refresh` is the
other recorder: it re-records every shipped fixture, from the rule-based reference planner unless
OC_BASE_URL is set, so the tests' fixtures stay deterministic.

    mise run oc:record -- --intent '{"goal":"count the words in a short poem","inputs":{},"constraints":{},"connectors":[]}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.oc import DEFAULT_FIXTURES_DIR, OCError, run_oc
from pipelines.oc.fixture_store import fixture_path
from pipelines.settings import load
from scripts.oc_live_smoke import provider_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intent", type=json.loads, required=True, help="the intent (JSON object)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixtures-dir", type=Path, default=DEFAULT_FIXTURES_DIR)
    args = parser.parse_args()
    try:
        with provider_for(load()) as provider:
            result = run_oc(args.intent, "record", args.seed, provider=provider, fixtures_dir=args.fixtures_dir,
                            recordings_dir=args.fixtures_dir)
    except OCError as exc:
        print(f"oc_record: FAILED {exc}", file=sys.stderr)
        if exc.detail:
            print(f"provider said: {exc.detail}", file=sys.stderr)
        return 1
    print(f"{fixture_path(args.fixtures_dir, result.fixture_key)}  seed={args.seed}  model={result.provider.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
