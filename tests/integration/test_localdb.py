"""The embedded server: idempotent up, down by PID, data survives a restart."""

import json
import subprocess
import sys

import psycopg
import pytest

from pipelines.settings import REPO_ROOT, load
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


def test_up_right_after_the_postmaster_was_killed_starts_it(tmp_path) -> None:
    """A SIGKILLed postmaster its parent has not reaped yet is a zombie: neither "running" (up must
    start a server) nor a reason for PostgreSQL to refuse the lock files it left."""
    result = subprocess.run([sys.executable, "-m", "tests.postmaster_zombie", str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["we_are_its_parent"] and report["zombie_after_up"], report  # the case faithfully made
    assert "error" not in report, report
    assert report["restarted"] != report["killed"]
