"""Fail-closed request parsing: media type, size, JSON syntax, then the contract — before any
row is written. Every rejection is a deterministic 4xx envelope."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import Request

import contracts
from api.errors import ApiError

MAX_BODY_BYTES = 1024 * 1024
_JSON = re.compile(r"^application/json\s*(;\s*charset=utf-8\s*)?$", re.IGNORECASE)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is over {MAX_BODY_BYTES} bytes")


async def _read_capped(request: Request) -> bytes:
    """The body, refused as soon as it passes the cap (a chunked body has no Content-Length)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _storable(value: Any, pointer: str = "") -> None:
    """JSON that Postgres can store: no NUL, no lone surrogates (text/jsonb reject them), and no
    number that overflows to infinity."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(400, "malformed_json", f"string at {pointer or '/'} contains NUL (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "malformed_json", f"string at {pointer or '/'} contains a lone surrogate") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, "malformed_json", f"number at {pointer or '/'} is out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, pointer)
            _storable(item, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _storable(item, f"{pointer}/{i}")


async def json_body(request: Request, contract: str, *, empty_is: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = await _read_capped(request)
    if not raw.strip() and empty_is is not None:
        return dict(empty_is)
    if not _JSON.match(request.headers.get("content-type", "")):
        raise ApiError(415, "unsupported_media_type", "content-type must be application/json")
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys,
                          parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {_first_line(exc)}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is nested too deeply") from None
    _storable(body)
    found = contracts.violations(contract, body)
    if found:
        raise ApiError(400, "schema_violation", f"request body does not match {contract}", found)
    return body


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def check_param(name: str, value: Any) -> Any:
    """A request parameter against its schema in contracts/params.schema.json (what the document declares)."""
    found = contracts.violations("params", {name: value})
    if found:
        raise ApiError(400, "schema_violation", f"parameter {name} is invalid", found)
    return value


def check_id(value: str, kind: str) -> str:
    """An id against its ``$defs`` pattern in contracts/params.schema.json, ``kind`` naming it."""
    pattern = contracts.schema("params")["$defs"][kind]["pattern"]
    # fullmatch, not the contract validator's re.search: Python's ``$`` also matches before a final
    # newline, the contract's (ECMA-262) does not.
    if not re.fullmatch(pattern, value):
        raise ApiError(400, "invalid_id", f"{kind} {value[:80]!r} does not match {pattern}")
    return value
