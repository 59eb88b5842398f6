"""The front door's boundary over real HTTP (runbook W4, W5): fail closed, deterministic envelopes,
no row written on any rejected request, idempotent creates, the bearer token, the 500 envelope and
the served OpenAPI document. Dagster is down on purpose: accepted runs wait in the outbox."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute

import contracts
from api import openapi
from tests.api_server import ServedApp, harness_state, serve

APP_TABLES = ("app.intents", "app.runs", "app.run_steps", "app.artifacts", "app.workflow_runs", "app.marks")
GOOD_INTENT = {"goal": "write hello.txt", "inputs": {"name": "hi"}, "constraints": {}, "connectors": []}
UNKNOWN_INTENT = "int_" + "0" * 32
UNKNOWN_RUN = "run_" + "0" * 32
JSON = {"content-type": "application/json"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def api(test_databases: Any) -> Iterator[ServedApp]:
    with serve(harness_state(test_databases.app_url, test_databases.dagster_url)) as served:
        yield served


@pytest.fixture(scope="module")
def client(api: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=20) as c:
        yield c


def all_app_tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                            "WHERE table_schema = 'app' AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def counts(url: str) -> dict[str, int]:
    tables = all_app_tables(url)
    assert set(APP_TABLES) <= set(tables)
    with psycopg.connect(url, autocommit=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # type: ignore[index]


def checked(resp: httpx.Response, status: int, contract: str | None = None) -> Any:
    """Assert the status and that the body conforms: the error envelope for every 4xx/5xx."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    contracts.validate("error" if status >= 400 else contract, body)  # type: ignore[arg-type]
    return body


def error_code(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body = checked(resp, status)
    assert body["error"]["code"] == code, body
    assert "errorId" not in body["error"]
    return body["error"]  # type: ignore[no-any-return]


def create_intent(client: httpx.Client, body: dict[str, Any] | None = None, **headers: str) -> str:
    resp = client.post("/intents", json=body or GOOD_INTENT, headers=headers)
    return checked(resp, 201, "intent-created")["intentId"]  # type: ignore[no-any-return]


@pytest.fixture
def intent(client: httpx.Client, app_db_url: str) -> str:
    """Empty tables plus one intent, so a run route that failed open would have something to write."""
    return create_intent(client)


# --- W4: the runbook's three bad payloads -------------------------------------------------------

def test_w4_malformed_json(client: httpx.Client, app_db_url: str) -> None:
    resp = client.post("/intents", content=b"{bad", headers=JSON)
    err = error_code(resp, 400, "malformed_json")
    assert err["details"] == []


def test_w4_missing_fields_are_listed_with_pointers(client: httpx.Client, app_db_url: str) -> None:
    resp = client.post("/intents", content=b'{"inputs":{},"constraints":{}}', headers=JSON)
    err = error_code(resp, 400, "schema_violation")
    assert err["details"] == [
        {"pointer": "/connectors", "message": "'connectors' is a required property"},
        {"pointer": "/goal", "message": "'goal' is a required property"},
    ]


def test_w4_violations_are_sorted_by_pointer(client: httpx.Client, app_db_url: str) -> None:
    body = {"goal": "", "inputs": [], "constraints": 1, "connectors": [1, ""]}
    err = error_code(client.post("/intents", json=body), 400, "schema_violation")
    pointers = [d["pointer"] for d in err["details"]]
    assert pointers == sorted(pointers)
    assert {"/goal", "/inputs", "/constraints", "/connectors/0", "/connectors/1"} <= set(pointers)


def test_w4_unknown_field_on_run(client: httpx.Client, intent: str, app_db_url: str) -> None:
    before = counts(app_db_url)
    resp = client.post(f"/intents/{intent}/run", content=b'{"unknownField":"x"}', headers=JSON)
    err = error_code(resp, 400, "schema_violation")
    assert err["details"] == [{"pointer": "", "message":
                               "Additional properties are not allowed ('unknownField' was unexpected)"}]
    assert counts(app_db_url) == before


@pytest.mark.parametrize("path,payload", [
    ("/intents", b"{bad"),
    ("/intents", b'{"inputs":{},"constraints":{}}'),
    ("/intents/{intent}/run", b'{"unknownField":"x"}'),
])
def test_w4_same_bad_input_gives_byte_identical_body(client: httpx.Client, intent: str, path: str,
                                                     payload: bytes) -> None:
    first = client.post(path.format(intent=intent), content=payload, headers=JSON)
    second = client.post(path.format(intent=intent), content=payload, headers=JSON)
    assert first.status_code == second.status_code == 400
    assert first.content == second.content


# --- W5: nothing is written on any invalid request ----------------------------------------------

class _Chunked:
    """A body sent chunked (no Content-Length): the size limit must hold after reading, too."""

    def __init__(self, total: int):
        self.total = total

    def __iter__(self) -> Iterator[bytes]:
        block = b" " * 65536
        for _ in range(self.total // len(block)):
            yield block


BIG = b'{"goal":"x","inputs":{"pad":"' + b"a" * (MIB + 16) + b'"},"constraints":{},"connectors":[]}'
GOOD = json.dumps(GOOD_INTENT).encode()

# (method, path, request kwargs, status, error code)
INVALID = [
    ("POST", "/intents", {"content": GOOD, "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ("POST", "/intents", {"content": GOOD}, 415, "unsupported_media_type"),
    ("POST", "/intents", {"content": GOOD, "headers": {"content-type": "application/json; charset=latin-1"}},
     415, "unsupported_media_type"),
    ("POST", "/intents", {"content": BIG, "headers": JSON}, 413, "payload_too_large"),
    ("POST", "/intents", {"content": _Chunked(2 * MIB), "headers": JSON}, 413, "payload_too_large"),
    ("POST", "/intents/{intent}/run", {"content": b'{"traceId":"' + b"a" * MIB + b'"}', "headers": JSON},
     413, "payload_too_large"),
    ("POST", "/intents/not-an-id/run", {"json": {}}, 400, "invalid_id"),
    ("POST", "/intents/INT_" + "0" * 32 + "/run", {"json": {}}, 400, "invalid_id"),
    ("POST", f"/intents/{UNKNOWN_INTENT}/run", {"json": {}}, 404, "not_found"),
    ("POST", f"/intents/{UNKNOWN_INTENT}/run", {}, 404, "not_found"),
    ("POST", "/intents", {"content": b'{"goal":"a","goal":"b","inputs":{},"constraints":{},"connectors":[]}',
                          "headers": JSON}, 400, "malformed_json"),
    ("POST", "/intents", {"content": b"[]", "headers": JSON}, 400, "schema_violation"),
    ("POST", "/intents", {"content": b'"goal"', "headers": JSON}, 400, "schema_violation"),
    ("POST", "/intents", {"content": b"null", "headers": JSON}, 400, "schema_violation"),
    ("POST", "/intents", {"content": b"", "headers": JSON}, 400, "malformed_json"),
    ("POST", "/intents", {"content": b'{"goal":"x","inputs":{"n":NaN},"constraints":{},"connectors":[]}',
                          "headers": JSON}, 400, "malformed_json"),
    ("POST", "/intents", {"content": b'{"goal":"x","inputs":{"n":Infinity},"constraints":{},"connectors":[]}',
                          "headers": JSON}, 400, "malformed_json"),
    ("POST", "/intents", {"content": b'{"goal":"\xff","inputs":{},"constraints":{},"connectors":[]}',
                          "headers": JSON}, 400, "malformed_json"),
    ("POST", "/intents", {"json": {**GOOD_INTENT, "goal": "   "}}, 400, "schema_violation"),
    ("POST", "/intents", {"json": GOOD_INTENT, "headers": {"idempotency-key": "has space"}}, 400, "schema_violation"),
    ("POST", "/intents/{intent}/run", {"content": b"[]", "headers": JSON}, 400, "schema_violation"),
    ("POST", "/intents/{intent}/run", {"json": {"oc": {"mode": "guess"}}}, 400, "schema_violation"),
    ("POST", "/intents/{intent}/run", {"json": {"traceId": "no spaces allowed"}}, 400, "schema_violation"),
    ("POST", "/intents/{intent}/run", {"content": b'{"traceId":"a","traceId":"b"}', "headers": JSON},
     400, "malformed_json"),
    ("POST", "/intents/{intent}/run", {"content": b'{"traceId":"t"}', "headers": {"content-type": "text/json"}},
     415, "unsupported_media_type"),
    ("POST", "/nope", {"json": GOOD_INTENT}, 404, "not_found"),
    ("GET", "/intents/int_X", {}, 400, "invalid_id"),
    ("GET", "/intents?limit=0", {}, 400, "schema_violation"),
    ("GET", "/runs?cursor=eyJ0IjoxfQ", {}, 400, "invalid_cursor"),
    ("GET", "/runs?status=done", {}, 400, "schema_violation"),
    ("GET", f"/runs/{UNKNOWN_RUN}/artifacts/plan.json", {"headers": {"range": "bytes=0-1"}}, 404, "not_found"),
    ("DELETE", "/intents", {}, 405, "method_not_allowed"),
    ("PATCH", "/intents", {}, 405, "method_not_allowed"),
    ("PUT", "/intents/{intent}/run", {"json": {}}, 405, "method_not_allowed"),
    ("GET", "/runs/not-a-run", {}, 400, "invalid_id"),
    ("GET", f"/runs/{UNKNOWN_RUN}", {}, 404, "not_found"),
    ("GET", f"/runs/{UNKNOWN_RUN}?wait=31", {}, 400, "schema_violation"),
    ("GET", f"/runs/{UNKNOWN_RUN}?wait=-1", {}, 400, "schema_violation"),
    ("GET", f"/runs/{UNKNOWN_RUN}?wait=nan", {}, 400, "schema_violation"),
    ("GET", f"/runs/{UNKNOWN_RUN}?wait=soon", {}, 400, "schema_violation"),
    ("POST", "/runs/not-a-run/cancel", {}, 400, "invalid_id"),
    ("POST", f"/runs/{UNKNOWN_RUN}/cancel", {}, 404, "not_found"),
    ("POST", f"/runs/{UNKNOWN_RUN}/resume", {}, 404, "not_found"),
    ("POST", "/crashdemo", {}, 400, "schema_violation"),
    ("POST", "/crashdemo?wf=has%20space", {}, 400, "invalid_id"),
    ("POST", "/crashdemo?wf=" + "w" * 129, {}, 400, "invalid_id"),
    ("GET", "/marks?wf=a/b", {}, 400, "invalid_id"),
]


def _case_id(case: tuple[Any, ...]) -> str:
    method, path, kwargs, status, code = case
    return f"{method} {path[:40]} {status} {code}"


@pytest.mark.parametrize("case", INVALID, ids=[_case_id(c) for c in INVALID])
def test_w5_invalid_request_writes_nothing(client: httpx.Client, intent: str, app_db_url: str,
                                          case: tuple[Any, ...]) -> None:
    method, path, kwargs, status, code = case
    url = app_db_url
    before = counts(url)
    resp = client.request(method, path.format(intent=intent), **kwargs)
    error_code(resp, status, code)
    assert counts(url) == before


def _intent_with(**fields: bytes) -> bytes:
    parts = {"goal": b'"x"', "inputs": b"{}", "constraints": b"{}", "connectors": b"[]", **fields}
    return b"{" + b",".join(b'"' + k.encode() + b'":' + v for k, v in parts.items()) + b"}"


# Valid JSON that matches the contract but cannot be stored (jsonb/text reject NUL and lone
# surrogates; 1e400 parses to inf): a client error, never a 500. (Nesting deeper than the parser's
# recursion limit is a 500 too, but its RecursionError in this process's server thread can upset
# CPython 3.11's AST recursion counter in pytest's own reporting, so it is not exercised here.)
UNSTORABLE = {
    "nul-in-goal": _intent_with(goal=b'"a\\u0000b"'),
    "nul-in-inputs-value": _intent_with(inputs=b'{"k":"a\\u0000b"}'),
    "nul-in-inputs-key": _intent_with(inputs=b'{"a\\u0000":1}'),
    "nul-in-connector": _intent_with(connectors=b'["a\\u0000"]'),
    "lone-surrogate-in-goal": _intent_with(goal=b'"\\ud800"'),
    "lone-surrogate-in-constraints": _intent_with(constraints=b'{"k":"\\udc00"}'),
    "number-overflowing-to-infinity": _intent_with(inputs=b'{"k":1e400}'),
}


@pytest.mark.parametrize("payload", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_json_is_a_client_error(api: ServedApp, app_db_url: str, payload: bytes) -> None:
    before = counts(app_db_url)
    resp = httpx.post(f"{api.base_url}/intents", content=payload, headers=JSON, timeout=20)
    assert 400 <= resp.status_code < 500, resp.text
    checked(resp, resp.status_code)
    assert counts(app_db_url) == before


# Allow lists every route's methods on the path: GET /intents and POST /intents are two routes.
UNSUPPORTED_METHODS = [("DELETE", "/intents", "GET, POST"), ("PUT", f"/runs/{UNKNOWN_RUN}", "GET"),
                       ("GET", f"/runs/{UNKNOWN_RUN}/cancel", "POST"), ("POST", "/runs", "GET")]


@pytest.mark.parametrize("method,path,allow", UNSUPPORTED_METHODS, ids=[f"{m} {p[:12]}" for m, p, _ in
                                                                         UNSUPPORTED_METHODS])
def test_405_says_which_methods_are_allowed(client: httpx.Client, method: str, path: str, allow: str) -> None:
    resp = client.request(method, path)
    error_code(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == allow  # RFC 9110: a 405 carries Allow


def test_id_with_trailing_newline_is_an_invalid_id(client: httpx.Client, app_db_url: str) -> None:
    resp = client.post(f"/intents/{UNKNOWN_INTENT}%0A/run", json={})
    error_code(resp, 400, "invalid_id")


# --- Idempotency-Key ----------------------------------------------------------------------------

def test_idempotent_intent_create(client: httpx.Client, app_db_url: str) -> None:
    headers = {"idempotency-key": "intent-key-1"}
    first = client.post("/intents", json=GOOD_INTENT, headers=headers)
    # Same body with its keys in another order is the same request.
    reordered = dict(reversed(list(GOOD_INTENT.items())))
    second = client.post("/intents", json=reordered, headers=headers)
    assert checked(first, 201, "intent-created") == checked(second, 201, "intent-created")
    assert first.content == second.content
    assert counts(app_db_url)["app.intents"] == 1

    conflict = client.post("/intents", json={**GOOD_INTENT, "goal": "something else"}, headers=headers)
    error_code(conflict, 409, "idempotency_conflict")
    assert counts(app_db_url)["app.intents"] == 1

    other_key = create_intent(client, **{"idempotency-key": "intent-key-2"})
    assert other_key != first.json()["intentId"]
    assert counts(app_db_url)["app.intents"] == 2


def test_idempotent_run_create(client: httpx.Client, intent: str, app_db_url: str) -> None:
    url = app_db_url
    headers = {"idempotency-key": "run-key-1"}
    first = client.post(f"/intents/{intent}/run", json={"traceId": "t-1"}, headers=headers)
    second = client.post(f"/intents/{intent}/run", json={"traceId": "t-1"}, headers=headers)
    assert checked(first, 202, "run-accepted") == checked(second, 202, "run-accepted")
    assert first.content == second.content
    assert counts(url)["app.runs"] == 1

    before = counts(url)
    error_code(client.post(f"/intents/{intent}/run", json={"traceId": "t-2"}, headers=headers),
               409, "idempotency_conflict")
    other_intent = create_intent(client)
    after_create = counts(url)
    error_code(client.post(f"/intents/{other_intent}/run", json={"traceId": "t-1"}, headers=headers),
               409, "idempotency_conflict")
    assert counts(url) == after_create
    assert after_create["app.runs"] == before["app.runs"]


def test_accepted_run_waits_in_the_outbox_and_is_viewable(client: httpx.Client, intent: str) -> None:
    run_id = checked(client.post(f"/intents/{intent}/run", json={"traceId": "trace-w3"}), 202,
                     "run-accepted")["runId"]
    view = checked(client.get(f"/runs/{run_id}"), 200, "run-view")
    assert (view["runId"], view["intentId"], view["status"], view["traceId"]) == (run_id, intent, "queued",
                                                                                   "trace-w3")
    # Every key in the contract's order; `failure` only explains a failed run, so not here.
    assert list(view) == [k for k in contracts.schema("run-view")["properties"] if k != "failure"]
    waited = checked(client.get(f"/runs/{run_id}", params={"wait": 0.3}), 200, "run-view")
    assert waited["status"] == "queued"


# --- OC modes: recording and live calls are the operator's (HARNESS_OC_MODES) -------------------

@pytest.mark.parametrize("oc", [{"mode": "record"}, {"mode": "live"}, {"mode": "record", "seed": 3}])
def test_oc_mode_not_enabled_is_refused_and_writes_nothing(client: httpx.Client, intent: str, app_db_url: str,
                                                          oc: dict[str, Any]) -> None:
    before = counts(app_db_url)
    resp = client.post(f"/intents/{intent}/run", json={"traceId": "t", "oc": oc})
    err = error_code(resp, 403, "forbidden")
    assert err["details"] == [{"pointer": "/oc/mode",
                               "message": f"{oc['mode']} is not in HARNESS_OC_MODES (replay)"}]
    assert counts(app_db_url) == before
    assert client.post(f"/intents/{intent}/run", json={"traceId": "t", "oc": oc}).content == resp.content


def test_replay_is_enabled_by_default(client: httpx.Client, intent: str, app_db_url: str) -> None:
    for body in ({}, {"oc": {"mode": "replay"}}, {"oc": {"seed": 2}}):
        checked(client.post(f"/intents/{intent}/run", json=body), 202, "run-accepted")
    assert counts(app_db_url)["app.runs"] == 3


@pytest.fixture(scope="module")
def recording_client(test_databases: Any) -> Iterator[httpx.Client]:
    state = harness_state(test_databases.app_url, test_databases.dagster_url)
    state.settings = dataclasses.replace(state.settings, oc_modes=("replay", "record"))
    with serve(state) as served, httpx.Client(base_url=served.base_url, timeout=20) as c:
        yield c


def test_an_operator_setting_enables_a_mode(recording_client: httpx.Client, intent: str, app_db_url: str) -> None:
    checked(recording_client.post(f"/intents/{intent}/run", json={"oc": {"mode": "record"}}), 202, "run-accepted")
    err = error_code(recording_client.post(f"/intents/{intent}/run", json={"oc": {"mode": "live"}}), 403, "forbidden")
    assert err["details"][0]["message"] == "live is not in HARNESS_OC_MODES (replay, record)"
    assert counts(app_db_url)["app.runs"] == 1


# --- Bearer token -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_client(test_databases: Any) -> Iterator[httpx.Client]:
    state = harness_state(test_databases.app_url, test_databases.dagster_url, api_token="s3cret")
    with serve(state) as served, httpx.Client(base_url=served.base_url, timeout=20) as c:
        yield c


WRITES = [
    ("/intents", {"json": GOOD_INTENT}),
    ("/intents", {"content": b"{bad", "headers": JSON}),
    ("/intents/{intent}/run", {"json": {}}),
    ("/intents/{intent}/run", {}),
    (f"/runs/{UNKNOWN_RUN}/cancel", {}),
    (f"/runs/{UNKNOWN_RUN}/resume", {}),
    ("/crashdemo?wf=token-wf", {}),
]
BAD_AUTH = [None, "Bearer wrong", "Bearer s3cret2", "Bearer", "s3cret", "Basic czNjcmV0"]


@pytest.mark.parametrize("path,kwargs", WRITES, ids=[w[0][:24] for w in WRITES])
@pytest.mark.parametrize("auth", BAD_AUTH, ids=[str(a) for a in BAD_AUTH])
def test_write_routes_need_the_token(token_client: httpx.Client, intent: str, app_db_url: str, path: str,
                                     kwargs: dict[str, Any], auth: str | None) -> None:
    url = app_db_url
    before = counts(url)
    headers = dict(kwargs.get("headers", {}))
    if auth is not None:
        headers["authorization"] = auth
    resp = token_client.post(path.format(intent=intent), **{**kwargs, "headers": headers})
    error_code(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"  # RFC 9110: a 401 names its scheme
    assert counts(url) == before


def test_reads_work_and_the_token_opens_writes(token_client: httpx.Client, app_db_url: str) -> None:
    health = token_client.get("/healthz")
    checked(health, health.status_code, "health")
    checked(token_client.get("/marks", params={"wf": "token-wf"}), 200, "marks")
    error_code(token_client.get(f"/runs/{UNKNOWN_RUN}"), 404, "not_found")
    assert token_client.get("/openapi.json").status_code == 200

    auth = {"authorization": "Bearer s3cret"}
    intent_id = checked(token_client.post("/intents", json=GOOD_INTENT, headers=auth), 201,
                        "intent-created")["intentId"]
    checked(token_client.post(f"/intents/{intent_id}/run", json={}, headers=auth), 202, "run-accepted")
    assert (counts(app_db_url)["app.intents"], counts(app_db_url)["app.runs"]) == (1, 1)


# --- Unexpected errors --------------------------------------------------------------------------

def test_unexpected_error_is_a_500_envelope_without_internals(api: ServedApp) -> None:
    def boom() -> dict[str, Any]:
        raise RuntimeError("secret-internal-detail in /srv/harness/probe.py")

    real = api.state.sandbox_status
    api.state.sandbox_status = boom
    try:
        # One kept-alive connection: a 500 must not reset it.
        with httpx.Client(base_url=api.base_url, timeout=20) as same:
            first, second = (same.get("/healthz") for _ in range(2))
    finally:
        api.state.sandbox_status = real
    for resp in (first, second):
        err = checked(resp, 500)["error"]
        assert (err["code"], err["message"], err["details"]) == ("internal_error", "unexpected server error", [])
        assert re.fullmatch(r"err_[0-9a-f]{16}", err["errorId"])
        for leak in ("secret-internal-detail", "Traceback", "RuntimeError", ".py"):
            assert leak not in resp.text
    assert first.json()["error"]["errorId"] != second.json()["error"]["errorId"]


def test_healthz_conforms(client: httpx.Client) -> None:
    resp = client.get("/healthz")
    body = checked(resp, 200, "health")  # both databases are up; Dagster is not: degraded, not down
    assert body["status"] == "degraded"
    assert body["checks"]["codeLocation"]["ok"] is False


# --- The served OpenAPI document ----------------------------------------------------------------

def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, through included routers (FastAPI >= 0.16x keeps them nested; no prefixes here)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


ARTIFACT_PATH, BYTES_STATUSES = "/runs/{run_id}/artifacts/{name}", {"200", "206", "304"}


def test_openapi_lists_every_route_with_contract_schemas(api: ServedApp, client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    components = doc["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    for name in ("intent-create", "intent-created", "run-create", "run-accepted", "error", "health", "marks",
                 "crashdemo-started", "run-view"):
        contract = contracts.schema(name)
        component = components[contract["title"]]
        assert component.get("required") == contract.get("required")
        assert component["properties"].keys() == contract["properties"].keys()
        assert "$defs" not in json.dumps(component)

    # The document names a path parameter without its converter (``{name:path}`` serves ``{name}``).
    routes = {(re.sub(r":\w+}", "}", r.path), m.lower()) for r in _api_routes(api.app.routes) for m in r.methods}
    served = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == served
    assert len(routes) == 14

    refs: list[str] = []
    for (path, method) in sorted(served):
        op = doc["paths"][path][method]
        assert "422" not in op["responses"]
        assert op["responses"], (path, method)
        for status, response in op["responses"].items():
            if status in BYTES_STATUSES and path == ARTIFACT_PATH:
                continue  # the artifact's own bytes and media type, or a 304 without a body
            if path == "/metrics":  # Prometheus' text format, said so (test_metrics parses it)
                assert response["content"] == {"text/plain": {"schema": {"type": "string"}}}, response
                assert "exposition" in response["description"]
                continue
            schema = response["content"]["application/json"]["schema"]
            refs.append(schema["$ref"])
            if int(status) >= 400 and path != "/healthz":
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, method, status)
        if "requestBody" in op:
            refs.append(op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in components, ref
    assert doc["paths"]["/intents"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IntentCreate"}
    assert doc["paths"]["/intents/{intent_id}/run"]["post"]["requestBody"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/RunCreate"}



def test_openapi_declares_every_parameter_as_contracts_params_does(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    declared = {(path, method, p["in"], p["name"]): p for path, ops in doc["paths"].items()
                for method, op in ops.items() for p in op.get("parameters", [])}
    assert {key[1:] for key in declared} == {
        ("post", "header", "Idempotency-Key"), ("post", "path", "intent_id"), ("get", "path", "run_id"),
        ("get", "query", "wait"), ("post", "path", "run_id"), ("post", "query", "wf"), ("get", "query", "wf"),
        ("get", "path", "intent_id"), ("get", "path", "name"), ("get", "header", "Range"),
        ("get", "header", "If-None-Match"), ("get", "header", "If-Range"),
        *(("get", "query", name) for name in ("status", "intent_id", "trace_id", "created_after", "created_before",
                                              "limit", "cursor"))}
    for (path, method, _, name), parameter in declared.items():
        assert parameter["schema"] == openapi.parameter_schema(name), (path, method, name)
    components = doc["components"]["schemas"]
    assert components["RequestParameters.runId"] == contracts.schema("params")["$defs"]["runId"]
    assert declared[("/runs/{run_id}", "get", "query", "wait")]["schema"]["maximum"] == 30
    assert {path for path, _, _, name in declared if name == "Idempotency-Key"} == {"/intents",
                                                                                  "/intents/{intent_id}/run"}


def test_openapi_declares_the_bearer_scheme_only_when_the_token_is_checked(client: httpx.Client,
                                                                          token_client: httpx.Client) -> None:
    open_doc, secured_doc = client.get("/openapi.json").json(), token_client.get("/openapi.json").json()
    assert "securitySchemes" not in open_doc["components"]
    assert not [op for ops in open_doc["paths"].values() for op in ops.values() if "security" in op]
    assert secured_doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    secured = {(path, method) for path, ops in secured_doc["paths"].items() for method, op in ops.items()
               if op.get("security") == [{"bearer": []}]}
    assert secured == {(path, method) for path, ops in secured_doc["paths"].items() for method in ops
                       if method == "post"}  # every write route, no read route


def test_database_outage_is_a_503_envelope(api: ServedApp) -> None:
    from psycopg_pool import ConnectionPool

    down = ConnectionPool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=True, timeout=1,
                          kwargs={"connect_timeout": 1})
    real = api.state.app_pool
    api.state.app_pool = down
    try:
        resp = httpx.get(f"{api.base_url}/runs/run_{'0' * 32}", timeout=20)
    finally:
        api.state.app_pool = real
        down.close()
    err = checked(resp, 503)["error"]
    assert (err["code"], err["details"]) == ("unavailable", [])
