"""Dagster resources that produce plans: the real OC producer and a scripted test double."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import PrivateAttr

import contracts
from pipelines.settings import Settings

from .config import ProviderConfig
from .errors import OCError
from .fixture_store import DEFAULT_FIXTURES_DIR, fixture_key
from .plan import SCHEMA_VERSION, validate_plan
from .produce import run_oc
from .result import Mode, OCResult, ProviderMeta


class OCProducer(ConfigurableResource, ABC):
    """What the intent job's OC op needs; swap implementations, not op code."""

    @abstractmethod
    def produce(self, intent: Mapping[str, Any], *, mode: Mode | None = None, seed: int | None = None) -> OCResult:
        """Plan for ``intent``; ``mode``/``seed`` override the configured ones for one run."""


class OCResource(OCProducer):
    """``run_oc`` configured per deployment; pass ``api_key=EnvVar("OC_API_KEY")`` so it is read at launch.

    ``from_settings`` fills the provider from the environment: OC_BASE_URL/OC_MODEL, else the
    embedded model server."""

    mode: Mode = "replay"
    seed: int = 0
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 3
    dialect: str = "auto"  # "openai", "llama-cpp" or "auto" (see pipelines/oc/dialect.py)
    max_tokens: int | None = None
    fixtures_dir: str = str(DEFAULT_FIXTURES_DIR)
    # Where record mode writes (and replay looks after fixtures_dir); unset, record is refused.
    recordings_dir: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OCResource:
        try:
            provider: ProviderConfig | None = ProviderConfig.from_settings(settings)
        except OCError:
            provider = None  # OC_BASE_URL without OC_MODEL: live/record fail closed as not_configured
        fields: dict[str, Any] = {"timeout_s": settings.oc_timeout_s, "max_retries": settings.oc_max_retries,
                                  "recordings_dir": str(settings.oc_recordings_dir)}
        if provider is not None:
            fields.update(base_url=provider.base_url, model=provider.model, dialect=provider.dialect,
                          max_tokens=provider.max_tokens)
        return cls(**{**fields, **overrides})

    def provider_config(self) -> ProviderConfig | None:
        if not (self.base_url and self.model):
            return None
        return ProviderConfig(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key or None,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            dialect=self.dialect,
            max_tokens=self.max_tokens,
        )

    def produce(self, intent: Mapping[str, Any], *, mode: Mode | None = None, seed: int | None = None) -> OCResult:
        return run_oc(
            intent,
            mode or self.mode,
            self.seed if seed is None else seed,
            provider=self.provider_config(),
            fixtures_dir=Path(self.fixtures_dir),
            recordings_dir=Path(self.recordings_dir) if self.recordings_dir else None,
        )


_SCRIPTED = ProviderMeta(
    provider="scripted", host=None, model=None, request_id=None, latency_ms=0, usage=None, finish_reason=None
)


class ScriptedOC(OCProducer):
    """Test double: hands out ``plans`` in order, each checked by the plan contract; never calls a provider.

    Runs out loudly, so a test that expects one call per run catches a second one.
    """

    plans: list[dict[str, Any]]
    seed: int = 0
    _calls: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        return self._calls

    def produce(self, intent: Mapping[str, Any], *, mode: Mode | None = None, seed: int | None = None) -> OCResult:
        if self._calls >= len(self.plans):
            raise OCError(
                "script_exhausted", f"ScriptedOC has {len(self.plans)} plan(s) and was called again"
            )
        candidate = self.plans[self._calls]
        self._calls += 1
        try:
            plan = validate_plan(candidate)
        except contracts.ContractViolation as exc:
            raise OCError(
                "schema_violation", f"scripted plan breaks the contract: {exc}", violations=exc.violations
            ) from exc
        key = fixture_key(dict(intent), self.seed)
        return OCResult(plan, "scripted", self.seed, key, SCHEMA_VERSION, _SCRIPTED)
