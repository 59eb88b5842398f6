"""The run storage our dagster.yaml configures: dagster-postgres's, asking the schema once."""

from __future__ import annotations

import pytest
import yaml
from dagster_postgres import PostgresRunStorage

from pipelines.orchestration.dagster_storage import SchemaCachingPostgresRunStorage
from pipelines.settings import REPO_ROOT, sqlalchemy_psycopg2
from tests.conftest import TestDatabases


def test_dagster_yaml_uses_it() -> None:
    config = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.yaml").read_text())
    assert config["run_storage"]["class"] == SchemaCachingPostgresRunStorage.__name__


def test_present_columns_are_asked_once_absent_ones_every_time(test_databases: TestDatabases,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    storage = SchemaCachingPostgresRunStorage.from_config_value(
        None, {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)})
    assert isinstance(storage, SchemaCachingPostgresRunStorage)
    real = PostgresRunStorage.has_run_stats_index_cols
    asked: list[str] = []

    def counting(self: PostgresRunStorage) -> bool:
        asked.append("stats")
        return real(self)

    monkeypatch.setattr(PostgresRunStorage, "has_run_stats_index_cols", counting)
    assert storage.has_run_stats_index_cols() and storage.has_run_stats_index_cols()
    assert asked == ["stats"]

    monkeypatch.setattr(PostgresRunStorage, "has_backfill_id_column", lambda self: asked.append("bf") or False)
    assert not storage.has_backfill_id_column() and not storage.has_backfill_id_column()
    assert asked == ["stats", "bf", "bf"]
