"""An intent's constraints → the bounds on its runs and their tags; what a CANCELING run reads as."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.orchestration import bounds, lifecycle
from pipelines.orchestration.dagster_runs import DagsterRun
from pipelines.store import repo


def test_bounds_become_dagster_tags() -> None:
    found = bounds.of({"maxRunSeconds": 60, "concurrency": {"key": "caller:acme", "limit": 2}, "other": 1})
    assert bounds.tags(found) == {"dagster/max_runtime": "60", "harness/concurrency_key": "caller:acme",
                                  "harness/concurrency_limit": "2"}


@pytest.mark.parametrize("constraints", [
    {}, {"maxRunSeconds": "60"}, {"maxRunSeconds": True}, {"maxRunSeconds": 0},
    {"concurrency": {"key": "k"}}, {"concurrency": {"key": "k", "limit": 0}}, {"concurrency": {"key": 1, "limit": 2}},
    {"concurrency": "k"},
])
def test_values_an_older_contract_let_through_bound_nothing(constraints: dict) -> None:
    assert bounds.tags(bounds.of(constraints)) == {}


def _run(canceled: bool) -> repo.Run:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return repo.Run(run_id="run_1", intent_id="int_1", trace_id=None, options={}, launched_at=now,
                    canceled_at=now if canceled else None, created_at=now)


def _dagster(status: str) -> DagsterRun:
    return DagsterRun(run_id="d1", job_name="intent_job", status=status, parent_run_id=None, root_run_id=None,
                      retry_number=0, will_retry=None, retry_launch_failed=False, created_at=0.0,
                      updated_at=datetime(2026, 1, 1))


def test_a_canceling_run_is_canceled_only_when_the_app_asked() -> None:
    assert lifecycle.status(_run(canceled=True), [_dagster("CANCELING")]) == "canceled"
    # Run monitoring cancels a run over its maxRunSeconds on the way to failing it.
    assert lifecycle.status(_run(canceled=False), [_dagster("CANCELING")]) == "running"


def test_a_run_dagster_canceled_on_its_own_failed() -> None:
    """Run monitoring's max-runtime cancel can end CANCELED (the worker's event landing last)."""
    assert lifecycle.status(_run(canceled=True), [_dagster("CANCELED")]) == "canceled"
    assert lifecycle.status(_run(canceled=False), [_dagster("CANCELED")]) == "failed"
