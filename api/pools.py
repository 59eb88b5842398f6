"""The API's PostgreSQL pools, bounded so that an outage costs a request seconds, not half a minute.

psycopg_pool's defaults suit a server that is always there: a request waits up to 30 s for a
connection, and a failed reconnection is retried with exponential backoff (1, 2, 4, 8 … s) for
5 minutes, one growing attempt at a time, so service came back only at the next backoff tick,
seconds after PostgreSQL did. Here a request gives up after ``WAIT_S`` (the route answers the 503
envelope: api/errors.py), and a reconnection gives up after ``RECONNECT_S``; the next request that
finds no connection then starts a fresh attempt at once. So the longest a request can find
PostgreSQL back but the pool still in backoff is the first backoff step (1 s).
"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

WAIT_S = 1.5  # a request's wait for a connection (a route needing both pools still fails on the first)
RECONNECT_S = 2.0  # a reconnection's whole backoff: attempts at 0, ~1 and 2 s, then it gives up
CONNECT_TIMEOUT_S = 2  # per connection attempt, for a server that drops packets (libpq's minimum)
MAX_SIZE = 8


def pool(url: str, name: str) -> ConnectionPool:
    """A pool, not yet open: the API starts without the database, and /healthz says 503 until it is back."""

    def check(conn: psycopg.Connection) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            # One dead idle connection means the server restarted or went away, and every other idle
            # one from before is dead too: replace them all now, instead of one per later request,
            # each costing that request a backoff sleep.
            conn_pool.drain()
            raise

    conn_pool: ConnectionPool = ConnectionPool(
        url, min_size=1, max_size=MAX_SIZE, open=False, name=name, timeout=WAIT_S, reconnect_timeout=RECONNECT_S,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}, check=check)
    return conn_pool
