"""Egress gate: every response body is checked against its contract before it is sent."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

import contracts
from api.errors import ApiError

log = logging.getLogger("api")


def respond(contract: str, body: dict[str, Any], status: int = 200) -> JSONResponse:
    found = contracts.violations(contract, body)
    if found:
        log.error("response breaks contract %s: %s", contract, [v.as_dict() for v in found])
        raise RuntimeError(f"response breaks contract {contract}")
    return JSONResponse(body, status_code=status)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} {ident} does not exist")
