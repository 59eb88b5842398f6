"""Routing tags for the Celery launcher: a class (priority, queue) from the intent's constraints,
declared in its contract, never priority 0 by default (on Redis the lowest number is served first)."""

import pytest

import contracts
from pipelines.orchestration import routing


def test_default_class_is_normal_on_the_default_queue() -> None:
    assert routing.tags({}) == {routing.QUEUE_TAG: "dagster", routing.PRIORITY_TAG: "5"}


def test_high_is_served_before_normal_and_low() -> None:
    order = sorted(["low", "normal", "high"], key=lambda p: int(routing.tags({"priority": p})[routing.PRIORITY_TAG]))
    assert order == ["high", "normal", "low"]


def test_a_class_of_work_names_its_queue() -> None:
    assert routing.tags({"priority": "low"}) == {routing.QUEUE_TAG: "dagster", routing.PRIORITY_TAG: "9"}
    assert routing.tags({"queue": "gpu.eu-1"}) == {routing.QUEUE_TAG: "gpu.eu-1", routing.PRIORITY_TAG: "5"}


@pytest.mark.parametrize("value", ["urgent", 3, None, ["high"]])
def test_any_other_priority_fails_closed(value: object) -> None:
    # The intent contract refuses these with a 400; a row that got past it is refused here too.
    with pytest.raises(ValueError, match="constraints.priority"):
        routing.tags({"priority": value})


@pytest.mark.parametrize(("constraints", "valid"), [
    ({"priority": "high", "queue": "gpu.eu-1"}, True), ({"priority": "urgent"}, False), ({"queue": "a b"}, False),
    ({"queue": ""}, False), ({"queue": "q" * 65}, False),
])
def test_the_intent_contract_declares_both(constraints: dict, valid: bool) -> None:
    body = {"goal": "x", "inputs": {}, "constraints": constraints, "connectors": []}
    if valid:
        contracts.validate("intent-create", body)
    else:
        with pytest.raises(contracts.ContractViolation):
            contracts.validate("intent-create", body)
