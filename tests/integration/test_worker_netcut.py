"""A worker host's network to PostgreSQL cut, one connection at a time, through a real TCP proxy
(``tests/tcp_cut.py``): a partition that drops packets holds a psycopg call for good, whatever the
server's ``statement_timeout``; the worker agent's lease calls are bounded on the client all the
same, and a refused network fails them at once. (The whole worker host cut off:
``test_stack_e2e_celery.py``.)"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pipelines.settings import load
from pipelines.store import leases
from scripts.worker import Agent
from tests.tcp_cut import BLACKHOLE, RESET, TcpCut

TTL = 5.0  # the agent's calls are bounded by TTL/5 (connect) and 2 TTL/5 (a query): 1-2 s
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
    """The bug the agent's deadline fixes: the server's statement_timeout (1 s here) cannot end a
    call whose packets never reach it."""
    with psycopg.connect(net.url(app_db_url), autocommit=True, options="-c statement_timeout=1000") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        net.cut(BLACKHOLE)
        thread, outcome = _in_thread(lambda: conn.execute("SELECT 2").fetchone())
        thread.join(5.0)  # five statement timeouts
        assert thread.is_alive() and outcome == [], outcome
        net.restore()  # what was held is delivered, and the call completes
        thread.join(GUARD_S)
        assert outcome == [(2,)]


def _agent(net: TcpCut, app_db_url: str) -> Agent:
    settings = dataclasses.replace(load(), app_database_url=net.url(app_db_url), lease_ttl_s=TTL)
    return Agent(settings, "w-netcut", 1, ("dagster",))


@pytest.mark.parametrize("mode", [BLACKHOLE, RESET])
def test_the_agents_lease_calls_fail_within_their_bound_when_the_network_is_cut(
        net: TcpCut, app_db_url: str, mode: str) -> None:
    agent = _agent(net, app_db_url)
    epoch = agent._call(lambda conn: leases.acquire(conn, agent.name, agent.ttl))
    assert agent._call(lambda conn: leases.renew(conn, agent.name, epoch, agent.ttl))
    net.cut(mode)
    # A call on the open connection, then one that must connect afresh (the first dropped it).
    for what in ("renewal on its connection", "renewal on a new connection"):
        thread, outcome = _in_thread(lambda: agent._call(lambda conn: leases.renew(conn, agent.name, epoch, agent.ttl)))
        thread.join(GUARD_S)
        assert not thread.is_alive(), f"the {what} is still blocked"
        assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError), (what, outcome)
    net.restore()
    # Back: the agent connects afresh and takes a new epoch, as it does after a lost lease.
    assert agent._call(lambda conn: leases.acquire(conn, agent.name, agent.ttl)) == epoch + 1
    assert agent.conn is not None
    agent.conn.close()
