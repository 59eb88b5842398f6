"""Wake long-polls when Dagster stores an event for a run, instead of re-reading on a timer.

dagster-postgres NOTIFYs channel ``run_events`` with ``<dagster run id>_<event id>`` for every
event it stores (kept "to support version skew" in 0.29: the pin test in
``tests/integration/test_run_events.py`` fails if an upgrade drops it). One listener thread per
API process LISTENs on its own connection and records the latest event per Dagster run; a
long-poll (a coroutine, holding no thread while it waits) re-reads its RunView only when one of
its group's runs has a new event, when a Dagster run not heard of before has its first (a launch
or a retry the view did not list yet: it may be this group's), when this process records a cancel
of its run (``touch``: the one status change with no Dagster event), and every ``FALLBACK_S`` while
the listener is reconnecting. With the listener up nothing re-reads on a timer: hundreds of open
long-polls cost no database reads until something happens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "run_events"
FALLBACK_S = 0.5
KEEP_RUNS = 10_000  # newest runs with a remembered event; an older one's next event wakes every long-poll


@dataclass(eq=False)
class _Waiter:
    keys: frozenset[str]  # its app run id and its Dagster run ids
    loop: asyncio.AbstractEventLoop
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """From the listener's thread: set the event on the waiter's own loop."""
        with suppress(RuntimeError):  # that loop has closed: nobody waits any more
            self.loop.call_soon_threadsafe(self.woken.set)


class RunEvents:
    def __init__(self, dagster_url: str):
        self._url = dagster_url
        self._lock = threading.Lock()
        self._count = 0  # events heard (and cancels touched) so far
        # dagster run id or app run id -> count at its newest event
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._new_run_at = 0  # count at the newest first event of a Dagster run
        self._waiters: set[_Waiter] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="run-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def mark(self) -> int:
        """The current event count: take it *before* reading a view, then ``wait`` from it, so an
        event stored while the view was being read is not missed."""
        with self._lock:
            return self._count

    async def wait(self, app_run_id: str, dagster_run_ids: Iterable[str], since: int, timeout_s: float) -> bool:
        """Wait until something after ``since`` may have changed the run's view (True: an event of
        one of its Dagster runs, the first event of any new Dagster run, a ``touch`` of the app
        run), or ``timeout_s`` passed (False) — ``FALLBACK_S`` at most while the listener is down."""
        waiter = _Waiter(frozenset((app_run_id, *dagster_run_ids)), asyncio.get_running_loop())
        with self._lock:
            if self._new_run_at > since or any(self._latest.get(k, 0) > since for k in waiter.keys):
                return True
            self._waiters.add(waiter)
            bound = timeout_s if self.listening else min(timeout_s, FALLBACK_S)
        try:
            async with asyncio.timeout(bound):
                await waiter.woken.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def touch(self, app_run_id: str) -> None:
        """Wake this process's long-polls of ``app_run_id``: its row changed with no Dagster event."""
        self._bump(app_run_id, dagster_run=False)

    def _record(self, payload: str) -> None:
        run_id, _, event_id = payload.rpartition("_")
        if run_id and event_id.isdigit():
            self._bump(run_id, dagster_run=True)

    def _bump(self, key: str, *, dagster_run: bool) -> None:
        with self._lock:
            new_run = dagster_run and key not in self._latest
            self._count += 1
            self._latest[key] = self._count
            self._latest.move_to_end(key)
            while len(self._latest) > KEEP_RUNS:
                self._latest.popitem(last=False)
            if new_run:
                self._new_run_at = self._count
            woken = [w for w in self._waiters if new_run or key in w.keys]
        for waiter in woken:
            waiter.wake()

    def _set_listening(self, listening: bool) -> None:
        """Changing modes wakes every long-poll: a lost listener means events may be missed from
        now on, so each re-reads and waits again with the fallback bound."""
        with self._lock:
            if self.listening == listening:
                return
            self.listening = listening
            woken = list(self._waiters)
        for waiter in woken:
            waiter.wake()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._set_listening(True)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._record(note.payload)
            except psycopg.Error as exc:
                log.warning("run-event listener lost its connection (%s); long-polls fall back to %.1f s polls",
                            exc, FALLBACK_S)
            finally:
                self._set_listening(False)
            self._stop.wait(1.0)
