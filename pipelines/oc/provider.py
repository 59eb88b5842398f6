"""One plan from an OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM).

Retries live here and only here: the ``openai`` client is built with ``max_retries=0`` so the attempt
count, the backoff and its jitter are ours to bound, seed and test.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, cast

import openai
from openai._legacy_response import LegacyAPIResponse
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

import contracts

from . import dialect as dialects
from . import localmodel
from .config import ProviderConfig
from .errors import OCError
from .plan import RESPONSE_FORMAT_NAME, validate_plan, wire_schema
from .result import ProviderMeta, Usage

# The client refuses an empty key; local servers (Ollama, llama.cpp, vLLM) ignore whatever is sent.
_NO_KEY = "no-key-configured"
_RETRY_STATUSES = frozenset({408, 429})


def _retry_after_s(exc: openai.APIError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; our own backoff is good enough


def _backoff_s(config: ProviderConfig, attempt: int, rng: random.Random, retry_after: float | None) -> float:
    ceiling = min(config.backoff_cap_s, config.backoff_s * 2**attempt)
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, config.backoff_cap_s)


def _is_transient(exc: openai.APIError) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
    )


def _describe(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def complete_plan(
    config: ProviderConfig,
    messages: list[ChatCompletionMessageParam],
    *,
    seed: int,
) -> tuple[dict[str, Any], ProviderMeta]:
    """Ask for one plan; return it only after it passed the contract, else raise ``OCError``."""
    client = openai.OpenAI(
        base_url=config.base_url,
        api_key=config.api_key or _NO_KEY,
        timeout=config.timeout_s,
        max_retries=0,
    )
    # Resolved before timing: the client imports its resource modules lazily on first use (~1 s here).
    create = client.chat.completions.with_raw_response.create
    rng = random.Random(seed)  # jitter that replays identically for one seed
    dialect = "openai" if config.dialect == "auto" else config.dialect
    failures = 0
    while True:
        fmt, translation = dialects.response_format(dialect, wire_schema(), RESPONSE_FORMAT_NAME)
        extra: dict[str, Any] = {} if config.max_tokens is None else {"max_tokens": config.max_tokens}
        started = time.perf_counter()
        try:
            # Any: the dialects' response_format and max_tokens are not all in the client's typed overloads.
            raw: LegacyAPIResponse[ChatCompletion] = cast(Any, create)(
                model=config.model, messages=messages, response_format=fmt, seed=seed, **extra)
        except openai.APIError as exc:
            status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
            if config.dialect == "auto" and dialect == "openai" and dialects.refuses_json_schema(
                    status, _body_text(exc)):
                dialect = "llama-cpp"  # discovered: not a failure, ask again in the form it takes
                continue
            failures += 1
            if not _is_transient(exc):
                raise OCError("provider_error", _describe(exc), detail=_body_text(exc)) from exc
            if failures > config.max_retries:
                hint = ""
                if config.model == localmodel.MODEL_ID and isinstance(exc, openai.APIConnectionError):
                    hint = f" (the embedded model server at {config.base_url}: is it up? `mise run model:up`)"
                raise OCError(
                    "retries_exhausted",
                    f"gave up after {failures} attempts; last: {_describe(exc)}{hint}",
                    detail=_body_text(exc),
                ) from exc
            time.sleep(_backoff_s(config, failures - 1, rng, _retry_after_s(exc)))
            continue
        return _read(config, raw, round((time.perf_counter() - started) * 1000), dialect, translation)


def _body_text(exc: openai.APIError) -> str | None:
    response = getattr(exc, "response", None)
    return response.text if response is not None else None


def _read(
    config: ProviderConfig, raw: LegacyAPIResponse[ChatCompletion], latency_ms: int, dialect: str,
    translation: dialects.Translation | None,
) -> tuple[dict[str, Any], ProviderMeta]:
    content_type = raw.headers.get("content-type", "")
    if not content_type.split(";")[0].strip().endswith("json"):
        raise OCError(
            "bad_response",
            f"expected a JSON body, got content-type {content_type!r}",
            detail=raw.http_response.text,
        )
    try:
        completion = raw.parse()
    except ValueError as exc:  # a JSON content type over a body that is not JSON
        raise OCError("bad_response", f"unreadable body: {exc}", detail=raw.http_response.text) from exc
    choices = getattr(completion, "choices", None)
    if not isinstance(completion, ChatCompletion) or not choices:
        raise OCError("bad_response", "not a chat completion with choices", detail=raw.http_response.text)
    choice = choices[0]
    message = choice.message
    if message.refusal:
        raise OCError("refusal", "the provider refused to plan", detail=message.refusal)
    if choice.finish_reason == "length":
        limit = f"max_tokens={config.max_tokens}" if config.max_tokens is not None else "the provider's default"
        raise OCError(
            "truncated", f"the output hit the token limit ({limit}, finish_reason=length); nothing was kept",
            detail=message.content,
        )
    if choice.finish_reason == "content_filter":
        raise OCError("content_filter", "the provider filtered the output", detail=message.content)
    if not message.content:
        raise OCError("bad_response", f"empty message content (finish_reason={choice.finish_reason})")
    try:
        doc = json.loads(message.content)
    except json.JSONDecodeError as exc:
        raise OCError("not_json", f"the output is not JSON: {exc}", detail=message.content) from exc
    try:
        plan = validate_plan(doc)
    except contracts.ContractViolation as exc:
        # The grammar enforced the translated schema; what it relaxed, only this validation checks.
        relaxed = (f" (the {dialect} dialect's grammar did not enforce: {translation.describe()})"
                   if translation is not None and translation.relaxed else "")
        raise OCError(
            "schema_violation",
            f"the output breaks the plan contract: {exc}{relaxed}",
            detail=message.content,
            violations=exc.violations,
        ) from exc
    usage = completion.usage
    meta = ProviderMeta(
        provider="openai-compatible",
        host=config.host,
        model=completion.model,
        request_id=raw.request_id or completion.id,
        latency_ms=latency_ms,
        usage=Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) if usage else None,
        finish_reason=choice.finish_reason,
        dialect=dialect,
    )
    return plan, meta
