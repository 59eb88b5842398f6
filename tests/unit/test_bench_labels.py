"""bench:launch labels each row with the coordinator and launcher the stack ran, and a cap only
when something caps runs (its stock rows once said "Queued 1 s, cap 8" over an unqueued instance)."""

from bench.launch_latency import VARIANTS, Variant
from scripts.stack import STOCK_COORDINATOR
from scripts.trial_stack import DEFAULT_LAUNCHER

BY_NAME = {v.name: v for v in VARIANTS}


def test_stock_rows_say_unqueued_and_uncapped() -> None:
    stock = BY_NAME["stock"]
    assert stock.label() == "stock (DefaultRunCoordinator + DefaultRunLauncher)"
    assert stock.cap(pool_cap=4) is None


def test_warm_rows_carry_the_pools_cap() -> None:
    warm = BY_NAME["warm"]
    assert warm.label() == "warm (DefaultRunCoordinator + WarmPoolRunLauncher)"
    assert warm.cap(pool_cap=4) == 4


def test_a_queued_variant_would_be_labelled_with_its_queue_and_cap() -> None:
    queued = Variant("queued", DEFAULT_LAUNCHER, STOCK_COORDINATOR, 0)
    assert queued.label() == "queued (QueuedRunCoordinator + DefaultRunLauncher)"
    assert queued.cap(pool_cap=4) == STOCK_COORDINATOR["config"]["max_concurrent_runs"]
