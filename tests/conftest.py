"""Shared test substrate.

Integration tests get one real PostgreSQL per test session — ``DATABASE_URL``'s server when set,
else an embedded server under ``.data/test`` (``HARNESS_TEST_DATA_DIR``) — with an app database
(migrated) and a Dagster database of their own, ``<name>_test`` and ``<name>_test_dagster``,
recreated once per session. Tests start from empty app tables (truncated, not re-created).
The session stops the embedded server when it ends, pass or fail, unless another session in the
same data dir still uses it; an external server is never stopped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pipelines.settings import REPO_ROOT, database_name, load, with_database
from pipelines.store import db, localdb, migrate
from scripts import suite

# Under .data/test*: `mise run down` stops what a killed session left there (scripts/suite.py).
TEST_DATA_DIR = Path(os.environ.get("HARNESS_TEST_DATA_DIR") or REPO_ROOT / ".data" / "test").resolve()
APP_TABLES = ("app.alerts", "app.artifacts", "app.run_steps", "app.runs", "app.intents", "app.marks", "app.workflow_runs",
              "app.run_workers", "app.worker_leases", "app.hello", "app.soak_results")


@dataclass(frozen=True)
class TestDatabases:
    __test__ = False

    app_url: str
    dagster_url: str
    embedded: bool  # False: DATABASE_URL's server, which the tests must not restart


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def test_databases() -> Iterator[TestDatabases]:
    external = os.environ.get("DATABASE_URL")
    # Held for the whole session: the test stacks live under TEST_DATA_DIR too.
    with suite.session(TEST_DATA_DIR) as alone:
        if not external:
            os.environ["HARNESS_DATA_DIR"] = str(TEST_DATA_DIR)
            settings = load()
        try:
            base = external or localdb.up(settings)[1]
            # HARNESS_TEST_DB lets two test sessions share one server without dropping each other's data.
            name = os.environ.get("HARNESS_TEST_DB") or database_name(base) + "_test"
            app_url = with_database(base, name)
            dagster_url = with_database(base, name + "_dagster")
            db.recreate_database(app_url)
            db.recreate_database(dagster_url)
            migrate.migrate(app_url)
            db.create_dagster_storage(dagster_url)
            yield TestDatabases(app_url=app_url, dagster_url=dagster_url, embedded=not external)
        finally:
            # Session-scoped, so torn down last, after the stacks that used the server.
            if not external and alone():
                localdb.down(settings)


@pytest.fixture(scope="session")
def test_broker(test_databases: TestDatabases) -> Iterator[str]:
    """The suite's own Redis (Debian's redis-server), started on first use like the embedded
    PostgreSQL, by PID under the suite's data dir, and stopped when the session ends."""
    from scripts import broker
    from tests import per_checkout

    settings = dataclasses.replace(load(), data_dir=TEST_DATA_DIR / "broker", broker_url_override=None)
    try:
        broker.up(settings, port=per_checkout.SUITE_BROKER)
        yield f"redis://127.0.0.1:{per_checkout.SUITE_BROKER}/0"
    finally:
        broker.down(settings)


def truncate_app_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(APP_TABLES)}")


@pytest.fixture
def app_db_url(test_databases: TestDatabases) -> str:
    truncate_app_tables(test_databases.app_url)
    return test_databases.app_url


@pytest.fixture
def app_conn(app_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        yield conn
