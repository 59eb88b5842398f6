"""Every port and host uid range the test suite takes, derived from ``PORT`` (default 3001), so two
checkouts on one machine can run the suite at once, each with its own ``PORT``.

A stack on API port p also takes p+1000 (Dagster UI) and p+2000 (code server). The suite's stacks
sit at PORT+10 … PORT+16 (and +1010 …, +2010 …), the durability proof's at PORT+3, all close to
PORT so that round PORTs apart stay apart: two checkouts' PORTs must differ by at least 17 and by
neither 984–1016 nor 1984–2016 (e.g. 3001, 3101, 3201, …). The data dirs are per checkout already
(``.data/test``).
"""

from __future__ import annotations

from pipelines.settings import load

_BASE = load().api_port + 10
# One API port per stack the suite boots; each takes its +1000 and +2000 too.
E2E_WARM, E2E_STOCK, TRIAL_WARM, PREFLIGHT, GOLDEN, TRACED, E2E_CELERY = range(_BASE, _BASE + 7)
# The suite's own Redis (tests/conftest.py, ``test_broker``): PORT+4009, below the brokers of the
# stacks above (their PORT+4000) and apart from every Dagster port (PORT+1000…, PORT+2000…).
SUITE_BROKER = load().api_port + 4009


def sandbox_uid_base(pool_size: int) -> int:
    """Host uids of their own for the sandbox containment tests (which look for every process of
    the range): above the stack's pool (200000+slot, shared by every checkout through its locks),
    and disjoint for any two PORTs."""
    return 300000 + pool_size * load().api_port
