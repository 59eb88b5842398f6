"""Run the warm pool (the Dagster run launcher's zygote) in the foreground.

    python -m scripts.pool [--socket PATH] [--max-running N]

Defaults from the settings (``HARNESS_POOL_SOCKET``, ``HARNESS_POOL_MAX_RUNNING``); Dagster reads
``DAGSTER_HOME`` and ``DAGSTER_PG_URL`` from the environment that ``scripts.stack.stack_env`` builds. Ready when ``pipelines.launcher.protocol.ping`` is true.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines import logs
from pipelines.settings import load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts.pool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = load()
    parser.add_argument("--socket", default=str(settings.pool_socket))
    parser.add_argument("--max-running", type=int, default=settings.pool_max_running)
    args = parser.parse_args(argv)
    if args.max_running < 1:
        parser.error("--max-running must be at least 1")
    logs.setup("pool", settings.log_format)
    from pipelines.launcher.pool import serve  # imports dagster: after argument errors are reported

    serve(Path(args.socket), args.max_running)


if __name__ == "__main__":
    main()
