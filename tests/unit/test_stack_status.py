"""`mise run status` shows the uid each part runs with (README, "Privileges"): read from the process
itself, so a part started as another user shows that user, not the uid of whoever asks."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.settings import Settings
from scripts import pidfiles, stack
from scripts.polling import poll

# As root the stand-in part runs as nobody, so the test tells the part's uid from the caller's.
OTHER_UID = 65534 if os.geteuid() == 0 else os.geteuid()


@pytest.fixture
def part() -> Iterator[subprocess.Popen]:
    drop = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([*drop, "sleep", "120"])
    try:
        # setpriv drops the uid, then execs sleep: once the process is sleep, its uid is the part's.
        poll("the part to exec sleep", lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep", 30)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _expected(uid: int) -> str:
    return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"


def test_owner_is_the_effective_uid_of_the_process(part: subprocess.Popen) -> None:
    assert stack.owner(os.getpid()) == _expected(os.geteuid())
    assert stack.owner(part.pid) == _expected(OTHER_UID)


def test_owner_of_a_gone_process_is_none(part: subprocess.Popen) -> None:
    part.kill()
    part.wait()
    assert stack.owner(part.pid) is None


def test_status_prints_each_parts_uid(part: subprocess.Popen, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path, external_database_url="postgresql://u@db.invalid/harness",
                        api_port=3999, dagster_ui_port=4999, dagster_grpc_port=5999, api_token=None,
                        run_launcher="warm")
    settings.run_dir.mkdir(parents=True)
    pidfiles.write(settings.run_dir / "api.pid", part)
    assert stack.status(settings) is False  # only the api "runs"
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"running pid {part.pid}" in lines["api"] and _expected(OTHER_UID) in lines["api"], lines["api"]
    for name in ("postgres", "pool", "codeserver", "daemon", "webserver"):
        assert lines[name].split()[2] == "-", lines[name]  # no process, no uid
