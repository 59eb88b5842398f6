"""Fixtures the integration tests share: Dagster's storage on the suite's databases."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from dagster import DagsterInstance, instance_for_test

from pipelines.settings import sqlalchemy_psycopg2
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
