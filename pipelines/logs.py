"""Structured logs: one JSON object per line, with the ids that tie a line to a run.

Every line has ``ts`` (UTC, ISO 8601), ``level``, ``service``, ``pid``, ``logger`` and ``msg``, and
where known ``app_run_id``, ``dagster_run_id``, ``step``, ``event``, ``trace_id`` and ``span_id``:

- a run worker binds its app and Dagster run ids once it knows them (``bind``), so every later
  line of that process carries them, Dagster's run events included (the ``json_lines``
  Dagster logger formats those with this formatter, ids from the record's ``dagster_meta``);
- ``trace_id`` and ``span_id`` are the current span's (tracing on), else the run span's;
- a line may name its run itself: ``log.info(..., extra={"app_run_id": ...})``.

So ``grep run_<id> .data/log/*`` finds every line a run's worker wrote and every line of ours
that names the run. ``HARNESS_LOG_FORMAT=text`` keeps the plain format instead.

Not ours to format: the lines Dagster's own processes print through their own handlers (the
webserver, the code server, the daemon's ``dagster.daemon.*`` loggers) stay in Dagster's text
format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pipelines import telemetry

IDS = ("app_run_id", "dagster_run_id", "trace_id", "span_id")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_bound: dict[str, str] = {}


def bind(**ids: str | None) -> None:
    """Ids every later line of this process carries (a run worker runs one run)."""
    _bound.update({k: v for k, v in ids.items() if v})


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None)
        message = record.getMessage()
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "service": self.service, "pid": record.process, "logger": record.name,
            "msg": message,
        }
        doc.update(_bound)
        if isinstance(meta, dict):
            doc["msg"] = meta.get("orig_message") or message
            for key, field in (("run_id", "dagster_run_id"), ("job_name", "job"), ("step_key", "step")):
                if meta.get(key):
                    doc[field] = meta[key]
            event = meta.get("dagster_event")
            if event is not None and getattr(event, "event_type_value", None):
                doc["event"] = event.event_type_value
        for key in IDS:
            if getattr(record, key, None):
                doc[key] = getattr(record, key)
        ids = telemetry.current_ids()
        if ids is not None and "trace_id" not in doc:
            doc["trace_id"], doc["span_id"] = ids
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _not_printed_already(record: logging.LogRecord) -> bool:
    """Dagster's own process loggers (the daemon's ``dagster.daemon.*``) print through a console
    handler of Dagster's (on the ``dagster`` logger, an ancestor) and propagate too: the root
    handler leaves those to them, once."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    root = logging.getLogger()
    while logger is not None and logger is not root:
        if logger.handlers:
            return False
        if not logger.propagate:
            break
        logger = logger.parent
    return True


def handler(service: str, log_format: str) -> logging.Handler:
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(JsonFormatter(service) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def setup(service: str, log_format: str, level: int = logging.INFO) -> None:
    """This process's root logger writes one line per record in ``log_format`` to stderr (which
    the stack sends to ``.data/log/<component>.log``); uvicorn's loggers go through it too."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    out = handler(service, log_format)
    out.addFilter(_not_printed_already)
    root.addHandler(out)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):  # not uvicorn.access: the stack serves with --no-access-log
        named = logging.getLogger(name)
        for old in list(named.handlers):
            named.removeHandler(old)
        named.propagate = True
