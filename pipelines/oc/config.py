"""Where the OC provider is and how hard to try it: no ``openai`` import here.

``openai`` costs ~0.8 s to import; replay mode (the default) never calls a provider, so only
``provider.py`` imports it, and only when a record or live run calls ``complete_plan``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import OCError

ENV_VARS = ("OC_BASE_URL", "OC_API_KEY", "OC_MODEL", "OC_TIMEOUT_S", "OC_MAX_RETRIES")


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
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ProviderConfig:
        missing = [name for name in ("OC_BASE_URL", "OC_MODEL") if not env.get(name)]
        if missing:
            raise OCError(
                "not_configured",
                f"set {' and '.join(missing)} (e.g. OC_BASE_URL=https://api.openai.com/v1 OC_MODEL=gpt-4o-mini "
                "OC_API_KEY=...; optional OC_TIMEOUT_S, OC_MAX_RETRIES)",
            )
        return cls(
            base_url=env["OC_BASE_URL"],
            model=env["OC_MODEL"],
            api_key=env.get("OC_API_KEY") or None,
            timeout_s=float(env.get("OC_TIMEOUT_S") or 60.0),
            max_retries=int(env.get("OC_MAX_RETRIES") or 3),
        )
