"""One live OC call, validated against the plan contract; prints the plan and metadata. Writes no fixture.

The provider is OC_BASE_URL/OC_MODEL when set, else the embedded model server (llama.cpp serving
SmolLM2-135M-Instruct from PyPI, `mise run model:up`): started for this call when it is down, and
stopped again afterwards. A smoke test that could not reach its provider has not passed: it exits 1.

    .venv/bin/python -m scripts.oc_live_smoke                     # the embedded model
    OC_BASE_URL=https://api.openai.com/v1 OC_MODEL=gpt-4o-mini OC_API_KEY=... .venv/bin/python -m scripts.oc_live_smoke
    OC_BASE_URL=http://127.0.0.1:11434/v1 OC_MODEL=llama3.1 .venv/bin/python -m scripts.oc_live_smoke   # Ollama
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.oc import OCError, ProviderConfig, run_oc
from pipelines.settings import Settings, load
from scripts import model
from scripts.oc_refresh import DEMO_INTENT


@contextmanager
def provider_for(settings: Settings) -> Iterator[ProviderConfig]:
    """The configured provider; for the embedded one, its server up for the block (stopped after
    only when this block started it)."""
    config = ProviderConfig.from_settings(settings)
    if not settings.oc_embedded_model:
        yield config
        return
    pid, started = model.up(settings)
    print(f"embedded model server pid {pid} at {config.base_url} ({'started' if started else 'already running'})",
          file=sys.stderr)
    try:
        yield config
    finally:
        if started:
            model.down(settings)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--intent", type=json.loads, default=DEMO_INTENT, help="intent JSON (default: the demo)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = load()
    try:
        with provider_for(settings) as provider:
            print(f"calling {provider.base_url} model {provider.model} (dialect {provider.dialect})", file=sys.stderr)
            result = run_oc(args.intent, "live", args.seed, provider=provider)
    except OCError as exc:
        print(f"oc_live_smoke: FAILED {exc}", file=sys.stderr)
        if exc.violations:
            print(json.dumps([v.as_dict() for v in exc.violations], indent=2), file=sys.stderr)
        if exc.detail:
            print(f"provider said: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    meta = result.provider
    print(f"oc_live_smoke: ok, plan validated against {result.schema_version}: model {meta.model}, "
          f"dialect {meta.dialect}, {meta.usage.total_tokens if meta.usage else '?'} tokens, "
          f"{meta.latency_ms} ms, finish_reason={meta.finish_reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
