"""Fixtures the integration tests share: Dagster's storage on the suite's databases."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from dagster import DagsterInstance, instance_for_test

from pipelines.settings import sqlalchemy_psycopg2
from tests.api_server import ServedApp, harness_state, serve
from tests.conftest import TestDatabases


@pytest.fixture
def instance(test_databases: TestDatabases) -> Iterator[DagsterInstance]:
    """A Dagster instance on the suite's Dagster database, wiped first."""
    url = sqlalchemy_psycopg2(test_databases.dagster_url)
    with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as inst:
        inst.wipe()
        yield inst


@pytest.fixture
def runs_conn(test_databases: TestDatabases) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the suite's Dagster database, for reading its run tables."""
    with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def served_api(test_databases: TestDatabases) -> Iterator[ServedApp]:
    """The API alone (no Dagster processes) on the suite's databases, served over real HTTP."""
    with serve(harness_state(test_databases.app_url, test_databases.dagster_url)) as served:
        yield served


@pytest.fixture
def client(served_api: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served_api.base_url, timeout=30) as c:
        yield c
