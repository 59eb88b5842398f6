"""JSON Schema contracts: the single source of truth for every ingress/egress shape.

Each ``contracts/<name>.schema.json`` is a Draft 2020-12 schema with a unique ``$id``.
One validator per schema is built once (with format checking) and cached.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parent
_SUFFIX = ".schema.json"


@dataclass(frozen=True)
class Violation:
    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class ContractViolation(ValueError):
    """A document did not match its contract; ``violations`` are in a stable order."""

    def __init__(self, contract: str, violations: list[Violation]):
        self.contract = contract
        self.violations = violations
        first = violations[0] if violations else Violation("", "invalid")
        super().__init__(f"{contract}: {first.pointer or '/'}: {first.message}")


def names() -> list[str]:
    return sorted(p.name[: -len(_SUFFIX)] for p in SCHEMA_DIR.glob(f"*{_SUFFIX}"))


@functools.cache
def _all_schemas() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = {}
    seen_ids: dict[str, str] = {}
    for name in names():
        schema = json.loads((SCHEMA_DIR / f"{name}{_SUFFIX}").read_text())
        schema_id = schema.get("$id")
        if not schema_id:
            raise RuntimeError(f"contract {name} has no $id")
        if schema_id in seen_ids:
            raise RuntimeError(f"contracts {seen_ids[schema_id]} and {name} share $id {schema_id}")
        seen_ids[schema_id] = name
        loaded[name] = schema
    return loaded


@functools.cache
def _registry() -> Registry:
    resources = [
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in _all_schemas().values()
    ]
    return Registry().with_resources(resources)


def schema(name: str) -> dict[str, Any]:
    try:
        return _all_schemas()[name]
    except KeyError:
        raise KeyError(f"no contract named {name!r}; known: {', '.join(names())}") from None


@functools.cache
def validator(name: str) -> Draft202012Validator:
    s = schema(name)
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _where(error: Any) -> str:
    """The error's JSON pointer; a missing required property points at the property itself."""
    path = list(error.absolute_path)
    if error.validator == "required":
        match = re.fullmatch(r"'(.+)' is a required property", error.message, re.DOTALL)
        if match:
            path.append(match.group(1))
    return _pointer(path)


def violations(name: str, instance: Any) -> list[Violation]:
    """All violations, ordered by JSON pointer then message, so error bodies are byte-stable."""
    found = {Violation(_where(e), e.message) for e in validator(name).iter_errors(instance)}
    return sorted(found, key=lambda v: (v.pointer, v.message))


def validate(name: str, instance: Any) -> Any:
    """Return ``instance`` unchanged when it conforms, else raise ``ContractViolation``."""
    found = violations(name, instance)
    if found:
        raise ContractViolation(name, found)
    return instance
