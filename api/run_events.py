"""Wake long-polls when Dagster stores an event for a run, instead of re-reading on a timer.

dagster-postgres NOTIFYs channel ``run_events`` with ``<dagster run id>_<event id>`` for every
event it stores (kept "to support version skew" in 0.29: the pin test in
``tests/integration/test_run_events.py`` fails if an upgrade drops it). One listener thread per
API process LISTENs on its own connection and records the latest event per Dagster run; a
long-poll re-reads its RunView only when one of its group's runs has a new event, or every
``FALLBACK_S`` for what makes no Dagster event (a retry run the view did not list yet) and while
the listener is reconnecting.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "run_events"
FALLBACK_S = 0.5
KEEP_RUNS = 10_000  # newest runs with a remembered event; older ones only cost a fallback wait


class RunEvents:
    def __init__(self, dagster_url: str):
        self._url = dagster_url
        self._cond = threading.Condition()
        self._count = 0  # events heard so far
        self._latest: OrderedDict[str, int] = OrderedDict()  # dagster run id -> count at its newest event
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
        with self._cond:
            return self._count

    def wait(self, run_ids: Iterable[str], since: int, timeout_s: float) -> bool:
        """Block until a run in ``run_ids`` has an event after ``since`` (True), or
        ``min(timeout_s, FALLBACK_S)`` passed (False)."""
        runs = list(run_ids)
        with self._cond:
            return self._cond.wait_for(lambda: any(self._latest.get(r, 0) > since for r in runs),
                                       min(timeout_s, FALLBACK_S))

    def _record(self, payload: str) -> None:
        run_id, _, event_id = payload.rpartition("_")
        if not run_id or not event_id.isdigit():
            return
        with self._cond:
            self._count += 1
            self._latest[run_id] = self._count
            self._latest.move_to_end(run_id)
            while len(self._latest) > KEEP_RUNS:
                self._latest.popitem(last=False)
            self._cond.notify_all()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._record(note.payload)
            except psycopg.Error as exc:
                log.warning("run-event listener lost its connection (%s); long-polls fall back to %.1f s polls",
                            exc, FALLBACK_S)
            finally:
                self.listening = False
            self._stop.wait(1.0)
