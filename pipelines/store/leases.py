"""Heartbeat leases of worker hosts (``app.worker_leases``): crash detection that works across
machines, where a pid check cannot.

A worker host's agent (``scripts/worker.py``) ``acquire``s the lease of its name, which bumps the
epoch, then ``renew``s it every TTL/5. A renewal succeeds only while the lease is still valid, so
once ``expires_at`` has passed the epoch is dead for good: the reaper may fail its runs and the
retry daemon re-execute them elsewhere, and no late heartbeat can revive them. Every time is the
database server's ``clock_timestamp()``: no host's clock is trusted.

The fence: a process running a run under a lease (``HARNESS_WORKER_LEASE``, set by the agent for
its Celery worker) checks the lease inside the transaction that commits a step checkpoint
(``pipelines.store.checkpoint.commit``), holding it ``FOR SHARE``; ``revoke`` (the reaper) takes
it ``FOR UPDATE`` first, so a commit under the lease either finished before the run was reaped or
is refused. A worker that comes back after its lease expired cannot commit a step.
"""

from __future__ import annotations

import os
import socket

import psycopg

from pipelines.settings import load


class LeaseLost(RuntimeError):
    """This worker's lease expired or was superseded: it must not commit anything more."""


def acquire(conn: psycopg.Connection, worker: str, ttl_s: float) -> int:
    """Take the lease of ``worker`` with a new epoch (whatever the old one's state); its epoch."""
    row = conn.execute(
        """
        INSERT INTO app.worker_leases AS l (worker, epoch, hostname, pid, acquired_at, renewed_at, expires_at)
        VALUES (%(w)s, 1, %(host)s, %(pid)s, clock_timestamp(), clock_timestamp(),
                clock_timestamp() + make_interval(secs => %(ttl)s))
        ON CONFLICT (worker) DO UPDATE SET
            epoch = l.epoch + 1, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
            acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at
        RETURNING epoch
        """,
        {"w": worker, "host": socket.gethostname(), "pid": os.getpid(), "ttl": ttl_s},
    ).fetchone()
    assert row is not None
    return int(row[0])


def renew(conn: psycopg.Connection, worker: str, epoch: int, ttl_s: float) -> bool:
    """Extend a still-valid lease; False when it expired or another epoch took it (lost for good)."""
    row = conn.execute(
        """
        UPDATE app.worker_leases SET renewed_at = clock_timestamp(),
                                     expires_at = clock_timestamp() + make_interval(secs => %s)
        WHERE worker = %s AND epoch = %s AND expires_at > clock_timestamp()
        RETURNING epoch
        """,
        (ttl_s, worker, epoch),
    ).fetchone()
    return row is not None


def release(conn: psycopg.Connection, worker: str, epoch: int) -> None:
    """Expire the lease now (a clean stop): its unfinished runs are reaped at once."""
    conn.execute("UPDATE app.worker_leases SET expires_at = clock_timestamp() WHERE worker = %s AND epoch = %s",
                 (worker, epoch))


def is_valid(conn: psycopg.Connection, worker: str, epoch: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM app.worker_leases WHERE worker = %s AND epoch = %s AND expires_at > clock_timestamp()",
        (worker, epoch),
    ).fetchone()
    return row is not None


REVOKE_LOCK_TIMEOUT_S = 5.0


def revoke(conn: psycopg.Connection, worker: str, epoch: int, lock_timeout_s: float = REVOKE_LOCK_TIMEOUT_S) -> bool:
    """True when the lease is dead (expired or superseded), after waiting out every commit still
    holding it: from then on no step can commit under it. False: the lease is valid, or a commit
    has held it for ``lock_timeout_s`` (ask again later). A commit is over in milliseconds; one
    that holds the lease longer belongs to a host cut off inside its transaction, whose session
    the server ends after ``session_options``' idle timeout: the reaper's tick is not held up
    meanwhile."""
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout_s * 1000)}ms",))
            row = conn.execute(
                "SELECT epoch, expires_at > clock_timestamp() FROM app.worker_leases WHERE worker = %s FOR UPDATE",
                (worker,),
            ).fetchone()
    except psycopg.errors.LockNotAvailable:
        return False
    return row is None or row[0] != epoch or not row[1]


def session_options() -> str:
    """libpq ``options`` for the app database sessions of a process running under a lease: the
    server ends a session idle inside a transaction for a TTL. A host cut off (or frozen) in the
    middle of a checkpoint commit would otherwise hold its lease ``FOR SHARE`` until the server's
    TCP keepalives noticed, hours by default, and its runs could not be reaped. Its transaction
    is rolled back: nothing of it commits, as the fence wants."""
    settings = load()
    if settings.worker_lease is None:
        return ""
    return f"-c idle_in_transaction_session_timeout={int(settings.lease_ttl_s * 1000)}"


def current() -> tuple[str, int] | None:
    """The lease this process runs under (a Celery worker host), or None (warm/stock launchers)."""
    return load().worker_lease


def fence(conn: psycopg.Connection) -> None:
    """Inside a transaction: raise LeaseLost unless this process's lease (if any) is still valid,
    holding it until the transaction ends. A no-op outside a worker host."""
    lease = current()
    if lease is None:
        return
    row = conn.execute(
        "SELECT 1 FROM app.worker_leases WHERE worker = %s AND epoch = %s AND expires_at > clock_timestamp() "
        "FOR SHARE",
        lease,
    ).fetchone()
    if row is None:
        raise LeaseLost(f"worker {lease[0]} lease epoch {lease[1]} expired or was superseded: this run was "
                        "(or will be) reaped and re-executed elsewhere; nothing committed")
