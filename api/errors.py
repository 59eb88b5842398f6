"""The one error envelope: ``{"error": {"code", "message", "details": [{pointer, message}]}}``.

Same input, byte-identical body: details are sorted, nothing time- or host-dependent is in it
(a 500 carries only a random error id, which the log line carries too).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from contracts import Violation

log = logging.getLogger("api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Sequence[Violation] = (),
                 headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


def envelope(code: str, message: str, details: Sequence[Violation] = (), error_id: str | None = None) -> dict:
    error: dict = {"code": code, "message": message, "details": [d.as_dict() for d in details]}
    if error_id:
        error["errorId"] = error_id
    return {"error": error}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(envelope(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers)


# Statuses Starlette and FastAPI raise themselves (routing, body parsing); our own errors are ApiErrors
# that name their code. Any other status gets its class's code, never another status's.
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 500: "internal_error",
               503: "unavailable"}


def http_code(status: int) -> str:
    return _HTTP_CODES.get(status) or ("server_error" if status >= 500 else "client_error")


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> str:
    """Every method some route serves on this path: Starlette's 405 names only the first route's,
    and FastAPI makes one route per method (``GET /intents`` and ``POST /intents`` are two)."""
    routes = request.app.router.routes
    return ", ".join(m for m in _METHODS
                     if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        # Its headers too: a 405's ``Allow`` lists the methods the path does serve (RFC 9110).
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and "app" in request.scope:
            headers["Allow"] = _allowed(request)
        return JSONResponse(envelope(http_code(exc.status_code), message), status_code=exc.status_code,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = sorted({Violation("/" + "/".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()},
                         key=lambda v: (v.pointer, v.message))
        return JSONResponse(envelope("schema_violation", "request parameters are invalid", details), status_code=400)

    # A middleware, not an exception handler: Starlette re-raises after a handler for Exception has
    # answered, which makes the server drop the keep-alive connection.
    @app.middleware("http")
    async def _unexpected(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            return await call_next(request)
        except (psycopg.OperationalError, PoolTimeout):
            # The database is down or saturated: the client may retry; nothing was half-written
            # (every write is one transaction).
            log.warning("database unavailable on %s %s", request.method, request.url.path, exc_info=True)
            return JSONResponse(envelope("unavailable", "a database is unavailable; retry later"), status_code=503)
        except Exception:
            error_id = f"err_{secrets.token_hex(8)}"
            log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
            return JSONResponse(envelope("internal_error", "unexpected server error", error_id=error_id),
                                status_code=500)
