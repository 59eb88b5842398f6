"""The served OpenAPI document, built from ``contracts/*.schema.json`` (no shape typed twice)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import contracts


def _component_name(contract: str) -> str:
    return str(contracts.schema(contract)["title"])


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Inline local ``#/$defs/x`` refs: in a components section they would resolve elsewhere."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def component(contract: str) -> dict[str, Any]:
    schema = copy.deepcopy(contracts.schema(contract))
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    return dict(_inline(schema, defs))


def ref(contract: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_component_name(contract)}"}


def io(request: str | None = None, *, responses: dict[int, str], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route: its request body and responses by contract name."""
    extra: dict[str, Any] = {
        "responses": {
            str(status): {"description": _component_name(name),
                          "content": {"application/json": {"schema": ref(name)}}}
            for status, name in sorted(responses.items())
        }
    }
    if request:
        extra["requestBody"] = {"required": required, "content": {"application/json": {"schema": ref(request)}}}
    return extra


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI's own validation-error models are never served: our envelope replaces them.
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                if responses.get("200", {}).get("description") == "Successful Response":
                    responses.pop("200")
        for name in contracts.names():
            schemas[_component_name(name)] = component(name)
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
