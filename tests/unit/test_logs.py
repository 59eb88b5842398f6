"""The JSON line format (pipelines/logs.py): one object per line, with the ids where known."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from pipelines import logs


@pytest.fixture(autouse=True)
def _unbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "_bound", {})
    yield


def _line(record: logging.LogRecord) -> dict:
    text = logs.JsonFormatter("api").format(record)
    assert "\n" not in text
    return json.loads(text)


def _record(msg: str, **attrs: object) -> logging.LogRecord:
    record = logging.LogRecord("harness.test", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(attrs)
    return record


def test_a_plain_line_has_the_fields_and_no_ids() -> None:
    doc = _line(_record("hello %s"))
    assert doc["msg"] == "hello %s" and doc["level"] == "INFO" and doc["service"] == "api"
    assert doc["logger"] == "harness.test" and doc["ts"].endswith("+00:00")
    assert not set(logs.IDS) & set(doc)


def test_bound_and_extra_ids_and_dagster_meta() -> None:
    logs.bind(service="run-worker", app_run_id="run_" + "a" * 32, dagster_run_id=None)
    meta = {"run_id": "d-1", "job_name": "intent_job", "step_key": "oc_plan", "orig_message": "step done",
            "dagster_event": None}
    doc = _line(_record("intent_job - d-1 - oc_plan - step done", dagster_meta=meta))
    assert doc["service"] == "run-worker" and doc["app_run_id"] == "run_" + "a" * 32
    assert (doc["dagster_run_id"], doc["job"], doc["step"], doc["msg"]) == ("d-1", "intent_job", "oc_plan", "step done")
    doc = _line(_record("launched", app_run_id="run_" + "b" * 32))
    assert doc["app_run_id"] == "run_" + "b" * 32


def test_text_format_is_still_available() -> None:
    handler = logs.handler("api", "text")
    assert not isinstance(handler.formatter, logs.JsonFormatter)


def test_lines_a_dagster_handler_prints_are_not_printed_again() -> None:
    """Dagster's daemon logs through ``dagster.daemon.<Name>`` loggers whose console handler sits on
    an ancestor; our root handler must not print those records a second time."""
    parent, child, ours = (logging.getLogger(n) for n in ("harness_test_dagster", "harness_test_dagster.daemon.X",
                                                           "harness_test_ours.x"))
    dagsters = logging.NullHandler()
    parent.addHandler(dagsters)
    try:
        assert not logs._not_printed_already(logging.LogRecord(child.name, logging.INFO, __file__, 1, "m", (), None))
        assert logs._not_printed_already(logging.LogRecord(ours.name, logging.INFO, __file__, 1, "m", (), None))
    finally:
        parent.removeHandler(dagsters)
