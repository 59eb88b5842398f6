"""Database control for the mise tasks: up, down, url, reset, sys-reset, migrate."""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.settings import load
from pipelines.store import db, localdb, migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.db")
    parser.add_argument("command", choices=["up", "down", "url", "reset", "sys-reset", "migrate", "status"])
    args = parser.parse_args(argv)
    settings = load()

    if args.command == "up":
        if settings.embedded:
            pid, _ = localdb.up(settings)
            print(f"embedded PostgreSQL running (pid {pid}, data {settings.pgdata})", file=sys.stderr)
        else:
            print("DATABASE_URL is set: using that server, nothing started", file=sys.stderr)
        for url in (db.app_url(settings), db.dagster_url(settings)):
            if db.ensure_database(url):
                print(f"created database {db.database_name(url)}", file=sys.stderr)
    elif args.command == "down":
        if not settings.embedded:
            print("DATABASE_URL is set: nothing to stop", file=sys.stderr)
        else:
            pid = localdb.down(settings)
            print(f"stopped PostgreSQL pid {pid}" if pid else "embedded PostgreSQL was not running", file=sys.stderr)
    elif args.command == "status":
        info = localdb.running(settings) if settings.embedded else None
        print(f"embedded pid {info[0]}" if info else ("external" if not settings.embedded else "not running"))
    elif args.command == "url":
        which = os.environ.get("DB", "app")
        if which not in ("app", "dagster"):
            parser.error(f"DB={which!r}: expected app or dagster")
        print(db.app_url(settings) if which == "app" else db.dagster_url(settings))
    elif args.command == "reset":
        db.recreate_database(db.app_url(settings))
        print(f"recreated {db.database_name(db.app_url(settings))} (empty; run migrate)", file=sys.stderr)
    elif args.command == "sys-reset":
        db.recreate_database(db.dagster_url(settings))
        print(f"recreated {db.database_name(db.dagster_url(settings))}", file=sys.stderr)
    elif args.command == "migrate":
        applied = migrate.migrate(db.app_url(settings))
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
