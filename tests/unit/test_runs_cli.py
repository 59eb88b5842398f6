"""`mise run runs:status` prints the API's RunView for a human, ending with the Dagster UI link;
`runs:list` ages rows coarsely (runbook W10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scripts.runs import age, main, render, table

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("name", ["run-view.json", "run-view-failed.json"])
def test_status_renders_every_step_and_the_ui_link(name: str) -> None:
    view = json.loads((GOLDEN / name).read_text())
    text = render(view)
    assert text.splitlines()[2] == f"status    {view['status']}"
    for step in view["steps"]:
        assert f"  {step['name']:<8} {step['status']:<10} attempts {step['attempts']}" in text
        if "error" in step:
            assert f"{step['error']['kind']}: {step['error']['message']}" in text
    assert text.splitlines()[-1] == f"Dagster UI: {view['dagsterRuns'][-1]['url']}"


def test_a_run_not_launched_yet_says_so() -> None:
    view = json.loads((GOLDEN / "run-view.json").read_text())
    assert render({**view, "dagsterRuns": []}).endswith("no Dagster run yet (the outbox launches it)")


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (59, "59s"), (60, "1m"), (7200, "2h"), (90000, "1d"),
                                                (-5, "0s")])
def test_age(seconds: int, shown: str) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert age(now - timedelta(seconds=seconds), now) == shown


def test_table_aligns_columns() -> None:
    assert table([["A", "BB"], ["ccc", "d"]]) == "A    BB\nccc  d"


def test_prune_refuses_an_age_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["prune", "--older-than", "30 days"])
    assert exited.value.code == 2
    assert "argument --older-than: '30 days' is not an age: expected a whole number of days" in capsys.readouterr().err
