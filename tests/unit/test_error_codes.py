"""Every status Starlette or FastAPI may raise gets the error envelope with a code of its own kind:
never another status's code (every unmapped status used to answer "conflict")."""

import asyncio
import json
from http import HTTPStatus

import pytest
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException

import contracts
from api import errors

ERROR_STATUSES = [s for s in HTTPStatus if 400 <= s < 600]
SERVER_CODES = {"internal_error", "unavailable", "server_error"}
EXPECTED = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
            418: "client_error", 429: "client_error", 500: "internal_error", 502: "server_error",
            503: "unavailable"}


def answer(status: int) -> tuple[int, dict]:
    """What the app's handler answers when Starlette or FastAPI raises ``status``."""
    app = FastAPI()
    errors.install(app)
    handler = app.exception_handlers[HTTPException]
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    response = asyncio.run(handler(request, HTTPException(status, HTTPStatus(status).phrase)))
    return response.status_code, json.loads(response.body)


@pytest.mark.parametrize("status", ERROR_STATUSES, ids=lambda s: str(int(s)))
def test_each_status_gets_a_code_of_its_kind(status: HTTPStatus) -> None:
    answered, body = answer(status)
    assert answered == status
    contracts.validate("error", body)
    code = body["error"]["code"]
    assert code == EXPECTED.get(status, code)
    assert (code == "conflict") == (status == 409)
    assert (code in SERVER_CODES) == (status >= 500)
