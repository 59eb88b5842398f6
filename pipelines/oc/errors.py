"""Why an OC step failed, in a form an op can record: a stable ``kind`` plus the provider's own words."""

from __future__ import annotations

from contracts import Violation

# Bounds what a misbehaving provider can push into logs and step records.
_DETAIL_LIMIT = 4000


class OCError(Exception):
    """The OC step failed; ``kind`` is stable for RunViews, ``detail`` keeps what the provider said."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        detail: str | None = None,
        violations: list[Violation] | None = None,
    ):
        self.kind = kind
        self.message = message
        self.detail = detail[:_DETAIL_LIMIT] if detail is not None else None
        self.violations = violations or []
        super().__init__(f"{kind}: {message}")


class FixtureMissing(OCError):
    """Replay found no recorded output for this key; replay never falls back to a provider."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__("fixture_missing", message)
