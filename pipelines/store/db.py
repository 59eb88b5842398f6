"""Database URLs and connections (psycopg 3 only in our code)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import psycopg
from psycopg import sql

from pipelines.settings import Settings, database_name, sqlalchemy_psycopg2, with_database
from pipelines.store import localdb


def app_url(settings: Settings) -> str:
    """``APP_DATABASE_URL`` (set by the stack for its processes), else ``DATABASE_URL``, else the
    embedded server's app database."""
    if settings.app_database_url:
        return settings.app_database_url
    if settings.external_database_url:
        return settings.external_database_url
    return localdb.server_url(settings)


def dagster_url(settings: Settings) -> str:
    """The Dagster storage database: same server, its own database (product and orchestration
    tables never mix). ``DAGSTER_DATABASE_URL`` overrides."""
    if settings.dagster_database_url:
        return settings.dagster_database_url
    app = app_url(settings)
    return with_database(app, database_name(app) + "_dagster")


def dagster_storage_url(settings: Settings) -> str:
    return sqlalchemy_psycopg2(dagster_url(settings))


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=10, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def deadline(conn: psycopg.Connection, seconds: float) -> Iterator[None]:
    """Bound the calls on ``conn`` inside the block on the client: once ``seconds`` have passed,
    shut its socket down, so that a call still waiting for the server fails with
    ``psycopg.OperationalError`` (the connection is then broken; drop it).

    psycopg waits for the server's answer with no client-side limit (``Connection.wait`` has no
    timeout for queries; only connecting has one, ``connect_timeout``). ``statement_timeout`` is
    the server's, so a partition that drops packets keeps the call blocked in recv for good. TCP
    keepalives and ``tcp_user_timeout`` catch a peer that stops acknowledging (once set short: by
    default it takes minutes to hours), never a middlebox that acknowledges and forwards nothing;
    this bounds every case.

    Shutting down a duplicate of the socket acts on the socket itself (unlike closing a
    duplicate), and the duplicate keeps it from being closed, and its number reused, before the
    watchdog has done."""
    watched = socket.socket(fileno=os.dup(conn.pgconn.socket))
    timer = threading.Timer(seconds, _shut_down, (watched,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        watched.close()


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _maintenance_url(url: str) -> str:
    return with_database(url, "postgres")


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if missing; True when it was created."""
    name = database_name(url)
    with connect(_maintenance_url(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def recreate_database(url: str) -> None:
    """Drop (forcibly disconnecting sessions) and create the database named in ``url``."""
    name = database_name(url)
    with connect(_maintenance_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def create_dagster_storage(url: str) -> None:
    """Create Dagster's tables in the database at ``url`` (Dagster creates them on first use), so
    readers of a fresh database (the RunView's queries) never meet an empty one."""
    from dagster import instance_for_test  # Dagster is heavy to import: only here

    with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": sqlalchemy_psycopg2(url)}}}):
        pass


def ensure_dagster_storage(url: str) -> None:
    """``create_dagster_storage`` unless its run table is there (it is once a stack has started)."""
    with connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('runs')").fetchone()
    if row is None or row[0] is None:
        create_dagster_storage(url)
