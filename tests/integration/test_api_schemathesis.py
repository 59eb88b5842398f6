"""Schemathesis against the served OpenAPI document: every operation, generated inputs (valid and
invalid; examples, coverage and fuzzing phases), over real HTTP. No 5xx, and every response
conforms to the schema it is documented with.

The schema is the app's own OpenAPI document, loaded at import so pytest can parametrize one test
per operation (schemathesis' lazy ``from_fixture`` loader does not work on pytest 9.2: it sets the
removed ``Node._nodeid``); a test asserts it is the document the server serves.

Dagster's webserver is replaced by an in-process double that accepts every launch, so the routes
that need it (``POST /crashdemo``) reach their success path instead of a legitimate 503: with
that, any 5xx at all is a bug.
"""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.main import create_app
from pipelines.orchestration.dagster_client import DagsterClient
from tests.api_server import ServedApp, harness_state, serve

MAX_EXAMPLES = 25
OPENAPI = create_app(types.SimpleNamespace()).openapi()  # type: ignore[arg-type]  # no state needed
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none")


class AcceptingDagster(DagsterClient):
    """Answers every GraphQL mutation with success, without a webserver."""

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        run = {"__typename": "LaunchRunSuccess", "run": {"runId": str(uuid.uuid4())}}
        return {"launchRun": run, "launchRunReexecution": run,
                "terminateRun": {"__typename": "TerminateRunSuccess"}}


@pytest.fixture(scope="module")
def served(test_databases: Any) -> Iterator[ServedApp]:
    state = harness_state(test_databases.app_url, test_databases.dagster_url)
    state.dagster = AcceptingDagster(state.dagster.base_url)
    with serve(state) as app:
        yield app


def test_fuzzed_schema_is_the_served_one(served: ServedApp) -> None:
    assert httpx.get(f"{served.base_url}/openapi.json", timeout=20).json() == OPENAPI


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case, served: ServedApp) -> None:
    case.call_and_validate(base_url=served.base_url, checks=[not_a_server_error, response_schema_conformance],
                           timeout=20)
