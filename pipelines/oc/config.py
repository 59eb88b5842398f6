"""Where the OC provider is and how hard to try it: no ``openai`` import here.

``openai`` costs ~0.8 s to import; replay mode (the default) never calls a provider, so only
``provider.py`` imports it, and only when a record or live run calls ``complete_plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipelines.settings import Settings

from . import localmodel
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
    # "openai", "llama-cpp", or "auto" (openai, switching to llama-cpp when the server refuses json_schema).
    dialect: str = "auto"
    max_tokens: int | None = None  # None: sent as no limit (the provider's default)

    @property
    def host(self) -> str | None:
        return urlsplit(self.base_url).hostname

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderConfig:
        """OC_BASE_URL/OC_MODEL when set, else the embedded model server (``mise run model:up``)."""
        if settings.oc_embedded_model:
            if settings.oc_model and settings.oc_model != localmodel.MODEL_ID:
                raise OCError(
                    "not_configured",
                    f"OC_MODEL={settings.oc_model} without OC_BASE_URL: the embedded model server serves only "
                    f"{localmodel.MODEL_ID}; set OC_BASE_URL to the server that serves {settings.oc_model}",
                )
            return cls(base_url=settings.oc_model_url, model=localmodel.MODEL_ID, api_key=None,
                       timeout_s=settings.oc_timeout_s, max_retries=settings.oc_max_retries,
                       dialect="llama-cpp" if settings.oc_dialect == "auto" else settings.oc_dialect,
                       max_tokens=settings.oc_max_tokens or localmodel.DEFAULT_MAX_TOKENS)
        if not settings.oc_model:
            raise OCError(
                "not_configured",
                "set OC_MODEL with OC_BASE_URL (e.g. OC_BASE_URL=https://api.openai.com/v1 OC_MODEL=gpt-4o-mini "
                "OC_API_KEY=...; optional OC_TIMEOUT_S, OC_MAX_RETRIES, OC_DIALECT, OC_MAX_TOKENS), or unset "
                "OC_BASE_URL to use the embedded model server (mise run model:up)",
            )
        assert settings.oc_base_url  # for mypy: not embedded
        return cls(base_url=settings.oc_base_url, model=settings.oc_model, api_key=settings.oc_api_key,
                   timeout_s=settings.oc_timeout_s, max_retries=settings.oc_max_retries,
                   dialect=settings.oc_dialect, max_tokens=settings.oc_max_tokens)
