"""The served OpenAPI document, built from ``contracts/*.schema.json`` (no shape typed twice).

It declares what the server enforces, no less and no more: every parameter's schema is the one
``contracts/params.schema.json`` gives it (the server checks the same), and the bearer scheme only
when ``API_TOKEN`` is set.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import contracts

PARAMS = "params"
# A contract's ``$defs`` entry, in its own file (``#/$defs/x``) or another (``other.schema.json#/$defs/x``).
_DEF_REF = re.compile(r"^(?:(?P<file>[a-z0-9-]+)\.schema\.json)?#/\$defs/(?P<name>[^/]+)$")


def _component_name(contract: str) -> str:
    return str(contracts.schema(contract)["title"])


def _def_component(contract: str, name: str) -> str:
    return f"{_component_name(contract)}.{name}"


def _convert(node: Any, contract: str) -> Any:
    """Point ``$defs`` refs at the components they become: ``#/...`` in a component means the whole
    document, and a recursive definition (``IntentCreate.storable``) cannot be inlined."""
    if isinstance(node, dict):
        out = {k: _convert(v, contract) for k, v in node.items() if k not in ("$schema", "$id", "$defs")}
        ref = node.get("$ref")
        if isinstance(ref, str):
            match = _DEF_REF.fullmatch(ref)
            if match is None:
                raise ValueError(f"contract {contract}: unsupported $ref {ref!r}")
            out["$ref"] = f"#/components/schemas/{_def_component(match['file'] or contract, match['name'])}"
        return out
    if isinstance(node, list):
        return [_convert(v, contract) for v in node]
    return node


def components() -> dict[str, Any]:
    """Every contract, and every ``$defs`` entry of one, as a component schema."""
    found: dict[str, Any] = {}
    for contract in contracts.names():
        schema = contracts.schema(contract)
        found[_component_name(contract)] = _convert(schema, contract)
        for name, definition in schema.get("$defs", {}).items():
            found[_def_component(contract, name)] = _convert(definition, contract)
    return found


def parameter_schema(name: str) -> dict[str, Any]:
    """The schema a request parameter is declared with: its property in the params contract."""
    return dict(_convert(contracts.schema(PARAMS)["properties"][name], PARAMS))


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


def install(app: FastAPI, *, bearer: bool) -> None:
    """Serve the document; ``bearer``: the server checks a bearer token on the routes that say so."""
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI's own validation-error models are never served: our envelope replaces them.
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        if not bearer:
            doc["components"].pop("securitySchemes", None)
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                if responses.get("200", {}).get("description") == "Successful Response":
                    responses.pop("200")
                for parameter in operation.get("parameters", []):
                    parameter["schema"] = parameter_schema(parameter["name"])
                if not bearer:
                    operation.pop("security", None)
        schemas.update(components())
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
