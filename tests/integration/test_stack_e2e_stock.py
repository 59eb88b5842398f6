"""The durability proofs again under Dagster's stock QueuedRunCoordinator + DefaultRunLauncher,
where only our reaper notices a run whose worker and code server died together."""

from collections.abc import Iterator

import pytest

from pipelines.settings import Settings
from tests import per_checkout
from tests.conftest import TestDatabases
from tests.integration.test_stack_e2e import assert_proof_holds, boot


@pytest.fixture(scope="module")
def stock_stack(test_databases: TestDatabases) -> Iterator[Settings]:
    yield from boot(test_databases, "stock", per_checkout.E2E_STOCK)


@pytest.mark.parametrize(("mode", "point"), [
    ("worker", "s2_after_commit"), ("server", "s2_before_commit"), ("stack", "s2_after_commit"),
])
def test_sigkill_and_restart_settle_exactly_once_on_the_stock_launcher(stock_stack: Settings, mode: str,
                                                                         point: str) -> None:
    assert stock_stack.run_launcher == "stock"
    assert_proof_holds(stock_stack, mode, point)
