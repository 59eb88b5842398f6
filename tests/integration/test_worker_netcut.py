"""A worker host's network to PostgreSQL cut, one connection at a time, through a real TCP proxy
(``tests/tcp_cut.py``): a partition that drops packets holds a psycopg call for good, whatever the
server's ``statement_timeout``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.tcp_cut import BLACKHOLE, TcpCut

GUARD_S = 30.0  # a join's generous guard: only a call that never returns reaches it


@pytest.fixture
def net(app_db_url: str) -> Iterator[TcpCut]:
    with TcpCut.to_database(app_db_url) as cut:
        yield cut


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``fn`` in a thread; its result or exception lands in the list."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # the outcome, checked by the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_a_blackhole_holds_a_plain_call_past_its_statement_timeout_until_restored(
        net: TcpCut, app_db_url: str) -> None:
    """The server's statement_timeout (1 s here) cannot end a call whose packets never reach it."""
    with psycopg.connect(net.url(app_db_url), autocommit=True, options="-c statement_timeout=1000") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        net.cut(BLACKHOLE)
        thread, outcome = _in_thread(lambda: conn.execute("SELECT 2").fetchone())
        thread.join(5.0)  # five statement timeouts
        assert thread.is_alive() and outcome == [], outcome
        net.restore()  # what was held is delivered, and the call completes
        thread.join(GUARD_S)
        assert outcome == [(2,)]

