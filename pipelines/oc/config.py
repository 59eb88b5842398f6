"""Where the OC provider is and how hard to try it: no ``openai`` import here.

``openai`` costs ~0.8 s to import; replay mode (the default) never calls a provider, so only
``provider.py`` imports it, and only when a record or live run calls ``complete_plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipelines.settings import Settings

from .errors import OCError


@dataclass(frozen=True)
class ProviderConfig:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    backoff_cap_s: float = 8.0

    @property
    def host(self) -> str | None:
        return urlsplit(self.base_url).hostname

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderConfig:
        missing = [name for name, value in (("OC_BASE_URL", settings.oc_base_url), ("OC_MODEL", settings.oc_model))
                   if not value]
        if missing:
            raise OCError(
                "not_configured",
                f"set {' and '.join(missing)} (e.g. OC_BASE_URL=https://api.openai.com/v1 OC_MODEL=gpt-4o-mini "
                "OC_API_KEY=...; optional OC_TIMEOUT_S, OC_MAX_RETRIES)",
            )
        assert settings.oc_base_url and settings.oc_model  # for mypy: checked just above
        return cls(base_url=settings.oc_base_url, model=settings.oc_model, api_key=settings.oc_api_key,
                   timeout_s=settings.oc_timeout_s, max_retries=settings.oc_max_retries)
