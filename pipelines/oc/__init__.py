"""OC producer: intent -> schema-checked plan, replayed from fixtures, recorded, or live."""

from .config import ProviderConfig
from .errors import FixtureMissing, OCError
from .fixture_store import DEFAULT_FIXTURES_DIR, canonical_json, fixture_key
from .plan import SCHEMA_VERSION, validate_plan
from .produce import run_oc
from .result import MODES, Mode, OCResult, ProviderMeta, Usage

__all__ = [
    "DEFAULT_FIXTURES_DIR",
    "MODES",
    "SCHEMA_VERSION",
    "FixtureMissing",
    "Mode",
    "OCError",
    "OCResult",
    "ProviderConfig",
    "ProviderMeta",
    "Usage",
    "canonical_json",
    "fixture_key",
    "run_oc",
    "validate_plan",
]
