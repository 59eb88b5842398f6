import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from pipelines.settings import with_database
from pipelines.store import db
from pipelines.store.migrate import SQL_DIR, MigrationError, migrate
from tests.conftest import TestDatabases


@pytest.fixture
def scratch_url(test_databases: TestDatabases) -> str:
    url = with_database(test_databases.app_url, "harness_migrate_scratch")
    db.recreate_database(url)
    return url


def test_apply_then_rerun_is_a_no_op(scratch_url: str) -> None:
    first = migrate(scratch_url)
    assert first == [p.stem for p in sorted(SQL_DIR.glob("*.sql"))]
    assert migrate(scratch_url) == []
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("SELECT version, length(checksum) FROM public.schema_migrations").fetchall()
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'")}
    assert rows == [(v, 64) for v in first]
    assert {"intents", "runs", "run_steps", "artifacts", "workflow_runs", "marks"} <= tables


def test_tampered_applied_migration_is_a_hard_error_naming_the_file(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(scratch_url, sql_dir)
    target = sorted(sql_dir.glob("*.sql"))[0]
    target.write_text(target.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(MigrationError, match=target.name):
        migrate(scratch_url, sql_dir)


def test_failing_migration_leaves_nothing_behind(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "0001_ok.sql").write_text("CREATE TABLE public.t1 (x int);")
    (sql_dir / "0002_broken.sql").write_text("CREATE TABLE public.t2 (x int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(scratch_url, sql_dir)
    with psycopg.connect(scratch_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM public.schema_migrations")]
        t2 = conn.execute("SELECT to_regclass('public.t2')").fetchone()
    assert versions == ["0001_ok"]
    assert t2 == (None,)


def test_badly_named_file_is_refused(scratch_url: str, tmp_path: Path) -> None:
    (tmp_path / "1_nope.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_"):
        migrate(scratch_url, tmp_path)


def test_concurrent_runners_apply_once(scratch_url: str) -> None:
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(scratch_url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(r) for r in results) == [0, 0, len(list(SQL_DIR.glob("*.sql")))]
