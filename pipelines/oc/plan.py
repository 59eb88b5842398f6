"""The plan contract as the OC producer uses it: validation, its version, and the provider's response_format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import contracts

if TYPE_CHECKING:  # openai is imported only where a provider is called (oc/config.py says why)
    from openai.types.shared_params import ResponseFormatJSONSchema

CONTRACT = "oc-output"
# The contract's const is the single source of the version, so a schema bump re-keys every fixture.
SCHEMA_VERSION: str = contracts.schema(CONTRACT)["properties"]["schemaVersion"]["const"]
RESPONSE_FORMAT_NAME = "oc_plan"


def validate_plan(doc: Any) -> dict[str, Any]:
    """Return ``doc`` when it is a valid plan, else raise ``contracts.ContractViolation``."""
    validated: dict[str, Any] = contracts.validate(CONTRACT, doc)
    return validated


def wire_schema() -> dict[str, Any]:
    """The contract as sent to a provider: ``$schema``/``$id`` name our registry entry and mean nothing to a model."""
    return {k: v for k, v in contracts.schema(CONTRACT).items() if k not in ("$schema", "$id")}


def response_format() -> ResponseFormatJSONSchema:
    """The openai dialect's ``response_format`` (``dialect.py`` has the others)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": RESPONSE_FORMAT_NAME, "strict": True, "schema": wire_schema()},
    }
