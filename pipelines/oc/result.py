"""What one OC step produced: the validated plan and metadata in a fixed, secret-free shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["replay", "record", "live"]
MODES: tuple[Mode, ...] = ("replay", "record", "live")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "totalTokens": self.total_tokens,
        }

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Usage:
        return cls(d["promptTokens"], d["completionTokens"], d["totalTokens"])


@dataclass(frozen=True)
class ProviderMeta:
    """Who answered and how; holds no API key and no prompt, so it can be persisted and shown as is."""

    provider: str  # "openai-compatible" for any chat-completions server, "scripted" for the test double
    host: str | None  # host name only: no scheme, port, path or credentials
    model: str | None  # as the provider reported it, not as requested
    request_id: str | None
    latency_ms: int | None
    usage: Usage | None
    finish_reason: str | None
    # How structured output was asked for ("openai" or "llama-cpp"); None for replays of recordings
    # made before dialects existed and for the scripted double. Shown only when known, so those
    # recordings (and the RunViews replaying them) read as before.
    dialect: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "host": self.host,
            "model": self.model,
            "requestId": self.request_id,
            "latencyMs": self.latency_ms,
            "usage": self.usage.as_dict() if self.usage else None,
            "finishReason": self.finish_reason,
            **({"dialect": self.dialect} if self.dialect is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProviderMeta:
        return cls(
            provider=d["provider"],
            host=d["host"],
            model=d["model"],
            request_id=d["requestId"],
            latency_ms=d["latencyMs"],
            usage=Usage.from_dict(d["usage"]) if d["usage"] else None,
            finish_reason=d["finishReason"],
            dialect=d.get("dialect"),
        )


@dataclass(frozen=True)
class OCResult:
    plan: dict[str, Any]
    mode: Mode | Literal["scripted"]
    seed: int
    fixture_key: str
    schema_version: str
    # In replay these describe the recorded call, so a replayed RunView is byte-stable.
    provider: ProviderMeta

    def meta(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "fixtureKey": self.fixture_key,
            "schemaVersion": self.schema_version,
            **self.provider.as_dict(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "meta": self.meta()}
