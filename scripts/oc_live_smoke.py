"""One live OC call against the provider named by OC_BASE_URL/OC_MODEL; prints the validated plan and metadata.

Without a provider configured it says what to set and exits non-zero: a smoke test that cannot reach a
provider has not passed. Writes no fixture.

    OC_BASE_URL=https://api.openai.com/v1 OC_MODEL=gpt-4o-mini OC_API_KEY=... .venv/bin/python -m scripts.oc_live_smoke
    OC_BASE_URL=http://127.0.0.1:11434/v1 OC_MODEL=llama3.1 .venv/bin/python -m scripts.oc_live_smoke   # Ollama
"""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.oc import OCError, ProviderConfig, run_oc
from pipelines.settings import load
from scripts.oc_refresh import DEMO_INTENT

NOT_CONFIGURED = """oc_live_smoke: no provider configured, nothing was called. Set:
  OC_BASE_URL     base URL of an OpenAI-compatible chat-completions API, e.g. https://api.openai.com/v1,
                  http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8000/v1 (vLLM)
  OC_MODEL        model id served there, with structured-output (json_schema) support
  OC_API_KEY      API key, if the provider needs one
  OC_TIMEOUT_S    optional, seconds per request (default 60)
  OC_MAX_RETRIES  optional, retries on 429/5xx/timeouts (default 3)
No model at hand? `.venv/bin/python -m scripts.oc_reference_provider` serves the rule-based reference
planner (not a language model) at http://127.0.0.1:8089/v1, model reference-planner-rule-based-not-an-llm."""


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
    if not (settings.oc_base_url and settings.oc_model):
        print(NOT_CONFIGURED, file=sys.stderr)
        return 2
    try:
        result = run_oc(args.intent, "live", args.seed, provider=ProviderConfig.from_settings(settings))
    except OCError as exc:
        print(f"oc_live_smoke: FAILED {exc}", file=sys.stderr)
        if exc.violations:
            print(json.dumps([v.as_dict() for v in exc.violations], indent=2), file=sys.stderr)
        if exc.detail:
            print(f"provider said: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    print(f"oc_live_smoke: ok, plan validated against {result.schema_version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
