"""Start the embedded server, SIGKILL its postmaster as its parent and do not reap it (so it stays
a zombie), then call ``localdb.up`` again. Prints a JSON report. Run in a process of its own:

    python -m tests.postmaster_zombie <data dir>

The process makes itself a child subreaper, so the daemonised postmaster (pg_ctl's grandchild) is
re-parented to it rather than to init, which would reap it at once; it reaps only at the end.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, …"""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def main(data_dir: str) -> int:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    os.environ["HARNESS_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    from pipelines.settings import load
    from pipelines.store import localdb
    from scripts.polling import poll

    settings = load()
    killed, _ = localdb.up(settings)
    report: dict[str, object] = {"killed": killed, "we_are_its_parent": int(_stat(killed)[1]) == os.getpid()}
    os.kill(killed, signal.SIGKILL)
    poll("the postmaster to become a zombie", lambda: _stat(killed)[0] == "Z", 10, 0.01)
    try:
        report["restarted"] = localdb.up(settings)[0]
    except Exception as exc:  # the report says why; the test asserts on it
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["zombie_after_up"] = _stat(killed)[0] == "Z"
    os.waitpid(killed, 0)
    localdb.down(settings)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
