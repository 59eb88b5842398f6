"""Which process runs which Dagster run, and whether that process is still alive.

A pid alone is not proof: pids are recycled. A worker is identified by (pid, start time in
clock ticks since boot) from ``/proc/<pid>/stat``, on one host.
"""

from __future__ import annotations

import os
import socket

import psycopg


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (after the parenthesised command name), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":  # a zombie has finished; only its exit status is left
        return None
    return int(fields[19])


def is_alive(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def register(conn: psycopg.Connection, dagster_run_id: str, lease: tuple[str, int] | None = None) -> None:
    """Record this process as the run's worker; on a Celery worker host with its ``lease``
    (worker name, epoch), and the worker name as its host: a host of its own, judged by its lease."""
    pid = os.getpid()
    ticks = start_ticks(pid)
    assert ticks is not None
    worker, epoch = lease if lease is not None else (None, None)
    conn.execute(
        """
        INSERT INTO app.run_workers (dagster_run_id, hostname, pid, pid_start_ticks, worker, lease_epoch)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (dagster_run_id) DO UPDATE
        SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, pid_start_ticks = EXCLUDED.pid_start_ticks,
            worker = EXCLUDED.worker, lease_epoch = EXCLUDED.lease_epoch, registered_at = now()
        """,
        (dagster_run_id, worker or socket.gethostname(), pid, ticks, worker, epoch),
    )


def mark_gone(conn: psycopg.Connection, worker: str, epoch: int) -> list[str]:
    """On a worker host (its agent): mark each run registered under this lease whose process is
    gone; the Dagster run ids newly marked. Rows of runs that finished are marked too once their
    process exits (a pool child runs many runs); the reaper only acts on runs still STARTED."""
    rows = conn.execute(
        "SELECT dagster_run_id, pid, pid_start_ticks FROM app.run_workers "
        "WHERE worker = %s AND lease_epoch = %s AND gone_at IS NULL",
        (worker, epoch),
    ).fetchall()
    gone = [run_id for run_id, pid, ticks in rows if not is_alive(pid, ticks)]
    if gone:
        conn.execute("UPDATE app.run_workers SET gone_at = clock_timestamp() WHERE dagster_run_id = ANY(%s)",
                     (gone,))
    return gone


def found_gone(conn: psycopg.Connection, dagster_run_id: str) -> bool:
    """Its worker host's agent saw the run's process gone (``mark_gone``)."""
    row = conn.execute("SELECT gone_at IS NOT NULL FROM app.run_workers WHERE dagster_run_id = %s",
                       (dagster_run_id,)).fetchone()
    return bool(row and row[0])


def mark_span_ended(conn: psycopg.Connection, dagster_run_id: str) -> None:
    """Its run span was ended and exported (pipelines/telemetry.py): no successor records it."""
    conn.execute("UPDATE app.run_workers SET span_ended_at = now() WHERE dagster_run_id = %s", (dagster_run_id,))


def span_lost(conn: psycopg.Connection, dagster_run_id: str) -> bool:
    """The run had a worker that never ended its run span (it was killed)."""
    row = conn.execute("SELECT span_ended_at IS NULL FROM app.run_workers WHERE dagster_run_id = %s",
                       (dagster_run_id,)).fetchone()
    return bool(row and row[0])


def lookup(conn: psycopg.Connection, dagster_run_id: str) -> tuple[str, int, int] | None:
    row = conn.execute(
        "SELECT hostname, pid, pid_start_ticks FROM app.run_workers WHERE dagster_run_id = %s",
        (dagster_run_id,),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def lease_of(conn: psycopg.Connection, dagster_run_id: str) -> tuple[str, int] | None:
    """(worker, epoch) a run registered under, or None (not registered, or not on a worker host)."""
    row = conn.execute(
        "SELECT worker, lease_epoch FROM app.run_workers WHERE dagster_run_id = %s AND worker IS NOT NULL",
        (dagster_run_id,),
    ).fetchone()
    return (row[0], int(row[1])) if row else None
