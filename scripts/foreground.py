"""Run one part of the harness in the foreground with the stack's environment.

    python -m scripts.foreground api          # uvicorn on PORT
    python -m scripts.foreground dagster-dev  # dagster dev (UI on DAGSTER_PORT) for workspace.yaml
    python -m scripts.foreground pool         # the warm run-launcher pool
"""

from __future__ import annotations

import dataclasses
import os
import sys

from pipelines.settings import REPO_ROOT, load
from scripts.stack import BIN, stack_env


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("api", "dagster-dev", "pool"):
        print(__doc__, file=sys.stderr)
        return 2
    settings = load()
    if argv[1] == "dagster-dev":
        # dagster dev runs its own daemon and code server; runs launch the stock way (no pool).
        settings = dataclasses.replace(settings, run_launcher="stock")
    env = stack_env(settings)
    os.chdir(REPO_ROOT)
    if argv[1] == "api":
        args = [str(BIN / "uvicorn"), "--factory", "api.main:create_app", "--host", "127.0.0.1", "--port", str(settings.api_port)]
    elif argv[1] == "pool":
        args = [sys.executable, "-m", "scripts.pool"]
    else:
        args = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                "-p", str(settings.dagster_ui_port)]
    os.execve(args[0], args, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
