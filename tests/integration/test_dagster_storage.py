"""The run storage our dagster.yaml configures: dagster-postgres's, asking the schema once."""

from __future__ import annotations

import psycopg
import pytest
import yaml
from dagster import instance_for_test
from dagster._core.errors import DagsterRunAlreadyExists
from dagster_postgres import PostgresRunStorage

from pipelines.jobs.hello import hello_job
from pipelines.orchestration import dagster_runs
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


def test_at_most_one_root_run_per_app_run(test_databases: TestDatabases) -> None:
    """The index behind exactly-once launch: a second root of one app run fails at its insert, its
    retries and re-executions (tagged with their parent) do not."""
    storage = {"module": "pipelines.orchestration.dagster_storage", "class": SchemaCachingPostgresRunStorage.__name__,
               "config": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}
    with instance_for_test(overrides={"run_storage": storage}) as instance:
        job = hello_job
        tags = {"app/run_id": "run_one_root"}
        root = instance.create_run_for_job(job, tags=tags)
        with pytest.raises(DagsterRunAlreadyExists):
            instance.create_run_for_job(job, tags=tags)
        child = instance.create_run_for_job(job, tags={**tags, "dagster/parent_run_id": root.run_id})
        other = instance.create_run_for_job(job, tags={"app/run_id": "run_another"})
    with psycopg.connect(test_databases.dagster_url) as conn:
        assert dagster_runs.root_run(conn, "run_one_root") == root.run_id
        assert dagster_runs.root_run(conn, "run_another") == other.run_id
        assert child.run_id != root.run_id
        conn.execute("SET enable_seqscan = off")  # a handful of rows: show the index is usable at all
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT run_id FROM runs WHERE (run_body::jsonb -> 'tags') ->> 'app/run_id' = 'x' "
            "AND NOT ((run_body::jsonb -> 'tags') ? 'dagster/parent_run_id')").fetchall())
    assert dagster_runs.ONE_ROOT_INDEX in plan


def test_a_run_and_its_tags_commit_together(test_databases: TestDatabases) -> None:
    """A tag insert that fails (here: a trigger on ``run_tags``, standing in for a process killed
    between Dagster's two autocommit inserts) leaves no run either; a good run keeps every tag."""
    storage = {"module": "pipelines.orchestration.dagster_storage", "class": SchemaCachingPostgresRunStorage.__name__,
               "config": {"postgres_url": sqlalchemy_psycopg2(test_databases.dagster_url)}}
    poison = """
        CREATE FUNCTION test_poison_tag() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.value = 'poison' THEN RAISE EXCEPTION 'tag insert failed'; END IF; RETURN NEW; END $$;
    """
    with instance_for_test(overrides={"run_storage": storage}) as instance:
        with psycopg.connect(test_databases.dagster_url, autocommit=True) as conn:
            conn.execute("DROP FUNCTION IF EXISTS test_poison_tag CASCADE")
            conn.execute(poison)
            conn.execute("CREATE TRIGGER test_poison_tag BEFORE INSERT ON run_tags FOR EACH ROW "
                         "EXECUTE FUNCTION test_poison_tag()")
            try:
                with pytest.raises(Exception, match="tag insert failed"):
                    instance.create_run_for_job(hello_job, tags={"app/run_id": "run_poisoned", "x": "poison"})
                good = instance.create_run_for_job(hello_job, tags={"app/run_id": "run_tagged", "x": "y"})
                untagged = instance.create_run_for_job(hello_job)
            finally:
                conn.execute("DROP FUNCTION test_poison_tag CASCADE")
            poisoned = conn.execute("SELECT count(*) FROM runs WHERE run_body LIKE %s",
                                    ("%run_poisoned%",)).fetchone()
            tags = dict(conn.execute("SELECT key, value FROM run_tags WHERE run_id = %s", (good.run_id,)).fetchall())
        assert poisoned == (0,)
        assert {"app/run_id": "run_tagged", "x": "y"}.items() <= tags.items()
        assert instance.get_run_by_id(untagged.run_id) is not None
        assert instance.get_run_tags(tag_keys=["app/run_id"])  # Dagster reads them back through run_tags
