"""How a provider is asked for a plan in structured form: its *dialect*. Pure functions, no ``openai``.

``openai``: ``response_format={"type": "json_schema", "json_schema": {..., "strict": true}}`` with the
contract as is (OpenAI, vLLM, Ollama, LiteLLM, llama.cpp's own ``llama-server``).

``llama-cpp``: llama-cpp-python's OpenAI-compatible server answers that form with HTTP 500 (its request
model allows only ``text`` and ``json_object``); it takes ``{"type": "json_object", "schema": ...}`` and
compiles the schema to a grammar. Its converter does not honour the whole contract, so the schema is
translated first (``llama_cpp_schema``):

- a ``pattern`` not anchored ``^…$`` makes the converter give up on the *whole* schema and fall back to
  "any JSON", silently: such patterns are dropped (a non-blank ``\\S`` becomes ``minLength: 1``);
- integer ``minimum``/``maximum`` are not enforced: a bounded integer becomes an ``enum`` of a few values
  inside the bounds;
- a string or array without a cap lets a small model run away inside it until ``max_tokens``: caps are
  added (never looser than the contract's own);
- its rule for a string's characters admits raw control characters (a newline inside a string: not
  JSON): a free string becomes an anchored pattern of plain characters (no control character, quote
  or backslash) within its length bounds. Narrower than the contract: such plans write no newline.

The translation only ever *narrows* what the grammar allows, except for what it lists as relaxed; the
full contract is still validated on the answer (``provider.py``), and an answer that breaks a relaxed
constraint fails the step naming it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

DIALECTS = ("openai", "llama-cpp")

# Caps that kept SmolLM2-135M inside a contract-valid plan (measured; see the README's provider section).
STRING_CAP = 200
STRING_CAPS = {"summary": 160, "run": 120, "content": 200, "name": 40}
ARRAY_CAPS = {"files": 2, "commands": 3}
# One character of a JSON string that needs no escaping: no control character, quote or backslash.
PLAIN_CHAR = '[^\\x00-\\x1f"\\\\]'
# Millisecond timeouts a plan may choose from when the grammar cannot bound an integer.
INTEGER_CHOICES = (1000, 5000, 10000, 30000, 60000)


@dataclass(frozen=True)
class Relaxed:
    """A contract constraint the grammar will not enforce; the validator still does."""

    pointer: str  # JSON pointer into the contract's schema
    keyword: str
    value: Any
    why: str

    def describe(self) -> str:
        return f"{self.pointer}/{self.keyword}={self.value!r} ({self.why})"


@dataclass(frozen=True)
class Translation:
    schema: dict[str, Any]
    relaxed: tuple[Relaxed, ...]

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self.relaxed) or "nothing"


def _anchored(pattern: str) -> bool:
    return pattern.startswith("^") and pattern.endswith("$")


def llama_cpp_schema(schema: dict[str, Any]) -> Translation:
    """The contract as llama-cpp-python's grammar converter honours it, plus what it could not keep."""
    relaxed: list[Relaxed] = []
    out = copy.deepcopy(schema)
    for key in ("$schema", "$id"):
        out.pop(key, None)

    def visit(node: dict[str, Any], pointer: str, name: str | None) -> None:
        kind = node.get("type")
        if kind == "string":
            pattern = node.get("pattern")
            if pattern is not None and not _anchored(pattern):
                del node["pattern"]
                relaxed.append(Relaxed(pointer, "pattern", pattern,
                                       "unanchored: the grammar converter would drop the whole schema"))
                if pattern == "\\S":  # non-blank: at least keep "not empty"
                    node["minLength"] = max(1, node.get("minLength", 0))
            if "pattern" not in node and "const" not in node and "enum" not in node:
                cap = STRING_CAPS.get(name or "", STRING_CAP)
                node["maxLength"] = min(cap, node.get("maxLength", cap))
                # Its converter's string rule lets raw control characters through (not JSON: the
                # answer then fails as not_json), and maxLength alone counts escapes oddly: a free
                # string becomes plain characters, no escape at all, within the same length bounds.
                node["pattern"] = f"^{PLAIN_CHAR}{{{node.get('minLength', 0)},{node['maxLength']}}}$"
        elif kind == "integer":
            low, high = node.get("minimum"), node.get("maximum")
            if low is not None or high is not None:
                choices = [v for v in INTEGER_CHOICES
                           if (low is None or v >= low) and (high is None or v <= high)]
                if not choices:
                    raise ValueError(f"{pointer}: no value of {INTEGER_CHOICES} lies in [{low}, {high}]")
                node["enum"] = choices
                # The enum keeps the bounds: every choice lies inside them, so nothing is relaxed.
        elif kind == "array":
            array_cap = ARRAY_CAPS.get(name or "")
            if array_cap is not None:
                node["maxItems"] = min(array_cap, node.get("maxItems", array_cap))
                if node.get("minItems", 0) > node["maxItems"]:
                    raise ValueError(f"{pointer}: minItems {node['minItems']} exceeds the cap {array_cap}")
            items = node.get("items")
            if isinstance(items, dict):
                visit(items, f"{pointer}/items", None)
        for prop, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict):
                visit(sub, f"{pointer}/properties/{prop}", prop)

    visit(out, "", None)
    return Translation(out, tuple(relaxed))


def response_format(dialect: str, schema: dict[str, Any], name: str) -> tuple[dict[str, Any], Translation | None]:
    """The ``response_format`` to send in ``dialect``, and the translation it used (``None``: the contract as is)."""
    if dialect == "openai":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}, None
    if dialect == "llama-cpp":
        translation = llama_cpp_schema(schema)
        return {"type": "json_object", "schema": translation.schema}, translation
    raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")


# llama-cpp-python's server rejecting the openai form (pydantic's literal_error on response_format.type).
_LLAMA_CPP_REFUSAL = "'text' or 'json_object'"


def refuses_json_schema(status: int | None, body: str | None) -> bool:
    """Whether an error answer is llama-cpp-python's refusal of ``json_schema`` (then speak ``llama-cpp``)."""
    return status is not None and status in (400, 422, 500) and _LLAMA_CPP_REFUSAL in (body or "")
