"""Run Dagster's daemon, as ``dagster-daemon run -w WORKSPACE`` does, on pooled storage connections.

    python -m scripts.daemon -w WORKSPACE

dagster-postgres opens a new Postgres session for every query (NullPool). The daemon's idle loops
(sensor and schedule ticks, run monitoring, the retry consumer, heartbeats) made ~11 new sessions
a second here, the biggest share of the idle stack's CPU (Postgres forking a backend for each).
dagster-webserver avoids that with ``DagsterInstance.optimize_for_webserver`` (one pooled
connection per storage plus overflow); the daemon gets the same before its controller starts.

A pooled connection outlives a Postgres restart as a dead socket, and each daemon loop would fail
once on it and wait for its next interval (a Postgres-restart proof settled ~6 s slower), so every
checkout is pinged first: SQLAlchemy's pessimistic disconnect handling, where a failed ping makes
the pool replace the connection before the loop ever sees it.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

from pipelines import logs
from pipelines.settings import load

# dagster-webserver's defaults for its own pooled instance (statement timeout in ms).
DAEMON_DB = {"statement_timeout": 15000, "pool_recycle": 3600, "max_overflow": 20}


def _ping_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        raise DisconnectionError(f"pooled connection is dead: {exc}") from exc  # the pool reconnects


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts.daemon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workspace", required=True, help="workspace.yaml naming the code location")
    args = parser.parse_args(argv)
    logs.setup("daemon", load().log_format)  # our loggers (the reconciler's, the reaper's); Dagster's keep theirs

    from dagster import DagsterInstance

    from pipelines.orchestration.dagster_internals import (
        WorkspaceFileTarget,
        capture_interrupts,
        daemon_controller_from_instance,
    )

    event.listen(Pool, "checkout", _ping_on_checkout)  # every pool of this process: the daemon's own
    try:
        with capture_interrupts(), DagsterInstance.get() as instance:
            instance.optimize_for_webserver(**DAEMON_DB)
            target = WorkspaceFileTarget(paths=[args.workspace])
            with daemon_controller_from_instance(instance, workspace_load_target=target) as controller:
                controller.check_daemon_loop()
    except KeyboardInterrupt:
        pass  # SIGINT/SIGTERM from `mise run down`: the controller has shut its daemons down


if __name__ == "__main__":
    main()
