"""The test suite's own PostgreSQL outlives no session: a real pytest session in a subprocess, on
a test data dir of its own, stops the embedded server it used when it ends, pass or fail; a
session killed before its teardown leaves it to `mise run down` (``scripts.suite``); and a
server named by DATABASE_URL is never stopped.
"""

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pipelines.settings import REPO_ROOT, Settings, database_name, load
from pipelines.store import localdb, run_workers
from scripts import suite
from scripts.polling import poll
from tests.conftest import TestDatabases

# Under .data/test*, as the suite's own dir is: `mise run down` stops what a failed run of these
# tests leaves. Kept between runs, so the inner sessions reuse its initdb.
INNER_ROOT = REPO_ROOT / ".data" / "test-session-end"
INNER_DATA = INNER_ROOT / "test"
INNER_TEST = '''
import os, time
from pathlib import Path
from pipelines.settings import load
from pipelines.store import localdb

def test_inner(test_databases):
    info = localdb.running(load()) if test_databases.embedded else None
    Path(os.environ["INNER_REPORT"]).write_text(str(info[0]) if info else "external")
    if os.environ["INNER_MODE"] == "hang":
        time.sleep(600)
    assert os.environ["INNER_MODE"] == "pass"
'''


def inner_session(tmp_path: Path, mode: str, **env: str) -> tuple[subprocess.Popen[str], Path]:
    test_file, report = tmp_path / "test_inner.py", tmp_path / "report"
    test_file.write_text(INNER_TEST)
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "APP_DATABASE_URL", "DAGSTER_DATABASE_URL", "HARNESS_TEST_DB")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO_ROOT / "pyproject.toml"),
         "-p", "tests.conftest", str(test_file)],
        cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**base, "HARNESS_TEST_DATA_DIR": str(INNER_DATA), "INNER_MODE": mode, "INNER_REPORT": str(report), **env},
    )
    return proc, report


def postmaster_pid(report: Path) -> int:
    return int(report.read_text())


def inner_settings() -> Settings:
    return dataclasses.replace(load(), data_dir=INNER_DATA, external_database_url=None)


@pytest.mark.parametrize(("mode", "exit_code"), [("pass", 0), ("fail", 1)])
def test_a_session_stops_its_embedded_postgres_when_it_ends(tmp_path: Path, mode: str, exit_code: int) -> None:
    proc, report = inner_session(tmp_path, mode)
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == exit_code, output
    pid = postmaster_pid(report)
    assert run_workers.start_ticks(pid) is None, f"PostgreSQL pid {pid} still runs after the session"
    assert localdb.running(inner_settings()) is None


def test_a_killed_session_leaves_postgres_to_down(tmp_path: Path) -> None:
    proc, report = inner_session(tmp_path, "hang")
    try:
        poll("the inner session to reach its test", lambda: report.exists() and report.read_text() != "", 240, 0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    pid = postmaster_pid(report)
    assert run_workers.start_ticks(pid) is not None  # no teardown ran: the server is still up
    assert f"{INNER_DATA / 'pg'}: stopped PostgreSQL pid {pid}" in suite.stop_leftovers(INNER_ROOT)
    assert run_workers.start_ticks(pid) is None


def test_a_session_never_stops_the_server_database_url_names(tmp_path: Path,
                                                              test_databases: TestDatabases) -> None:
    proc, report = inner_session(tmp_path, "pass", DATABASE_URL=test_databases.app_url,
                                 HARNESS_TEST_DB=database_name(test_databases.app_url) + "_inner")
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    assert report.read_text() == "external"
    with psycopg.connect(test_databases.app_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
