"""Run the warm pool (the Dagster run launcher's zygote) in the foreground.

    python -m scripts.pool [--socket PATH] [--max-running N]

Reads ``HARNESS_POOL_SOCKET`` (default ``<data_dir>/run/pool.sock``), ``HARNESS_POOL_MAX_RUNNING``
(default 4), ``DAGSTER_HOME``, ``DAGSTER_PG_URL`` and ``APP_DATABASE_URL`` from the environment
that ``scripts.stack.stack_env`` builds. Ready when ``pipelines.launcher.protocol.ping`` is true.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from pipelines.settings import load

DEFAULT_MAX_RUNNING = 4


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts.pool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", default=os.environ.get("HARNESS_POOL_SOCKET")
                        or str(load().run_dir / "pool.sock"))
    parser.add_argument("--max-running", type=int,
                        default=int(os.environ.get("HARNESS_POOL_MAX_RUNNING") or DEFAULT_MAX_RUNNING))
    args = parser.parse_args(argv)
    if args.max_running < 1:
        parser.error("--max-running must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from pipelines.launcher.pool import serve  # imports dagster: after argument errors are reported

    serve(Path(args.socket), args.max_running)


if __name__ == "__main__":
    main()
