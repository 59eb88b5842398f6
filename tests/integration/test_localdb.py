"""The embedded server: idempotent up, down by PID, data survives a restart."""

import psycopg
import pytest

from pipelines.settings import load
from pipelines.store import localdb


def test_up_twice_down_up_keeps_data(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load()
    pid, url = localdb.up(settings)
    try:
        assert localdb.up(settings)[0] == pid  # reused, not restarted
        postgres_url = url.replace("/harness?", "/postgres?")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivor (v text)")
            conn.execute("INSERT INTO survivor VALUES ('kept')")
        assert localdb.down(settings) == pid
        assert localdb.running(settings) is None
        new_pid, url2 = localdb.up(settings)
        assert new_pid != pid
        with psycopg.connect(url2.replace("/harness?", "/postgres?")) as conn:
            assert conn.execute("SELECT v FROM survivor").fetchall() == [("kept",)]
    finally:
        localdb.down(settings)
