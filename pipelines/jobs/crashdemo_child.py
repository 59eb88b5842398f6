"""One crashdemo execution in this process (used by the scheduled soak): with a crash point the
process SIGKILLs itself there, exactly like a crashed run worker.

    python -m pipelines.jobs.crashdemo_child <wf_id> <crash_at>     (the app database URL on stdin)
"""

from __future__ import annotations

import sys

from pipelines.jobs.crashdemo import crashdemo
from pipelines.jobs.crashdemo import run_config as crashdemo_run_config
from pipelines.resources.app_db import AppDatabase


def main(argv: list[str]) -> int:
    wf_id, crash_at = argv[1], argv[2]
    result = crashdemo.execute_in_process(
        run_config=crashdemo_run_config(wf_id, crash_at, 0.0), tags={"app/run_id": wf_id},
        resources={"app_db": AppDatabase(url=sys.stdin.readline().strip())}, raise_on_error=False,
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
