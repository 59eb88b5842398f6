"""Routing tags for the Celery launcher: a class from the intent's constraints, never priority 0
by default (on Redis the lowest number is served first)."""

import pytest

from pipelines.orchestration import routing


def test_default_class_is_normal_on_the_default_queue() -> None:
    assert routing.tags({}) == {routing.QUEUE_TAG: "dagster", routing.PRIORITY_TAG: "5"}


def test_high_is_served_before_normal_and_low() -> None:
    order = sorted(["low", "normal", "high"], key=lambda p: int(routing.tags({"priority": p})[routing.PRIORITY_TAG]))
    assert order == ["high", "normal", "low"]


def test_every_class_goes_to_the_default_queue() -> None:
    assert routing.tags({"priority": "low"}) == {routing.QUEUE_TAG: "dagster", routing.PRIORITY_TAG: "9"}


@pytest.mark.parametrize("value", ["urgent", 3, None, ["high"]])
def test_any_other_value_is_no_priority_of_ours(value: object) -> None:
    assert routing.tags({"priority": value}) == routing.tags({})
