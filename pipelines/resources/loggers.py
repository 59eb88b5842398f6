"""Dagster's run logs (``context.log``, run events) as JSON lines: pipelines/logs.py's format with
the record's Dagster ids, replacing Dagster's colored console logger for every job
(``Definitions(loggers=...)``) when ``HARNESS_LOG_FORMAT=json``."""

from __future__ import annotations

import logging

from dagster import Field, InitLoggerContext, logger

from pipelines import logs


@logger(config_schema={"log_level": Field(str, is_required=False, default_value="DEBUG")},
        description="One JSON object per line, with the app and Dagster run ids, trace and span ids")
def json_lines(init_context: InitLoggerContext) -> logging.Logger:
    # DEBUG by default, as Dagster's console logger: the run events (RUN_START, STEP_START, ...).
    # A logger of its own per run, outside the global registry: no handler piles up across runs.
    out = logging.Logger("harness.run", level=init_context.logger_config["log_level"])
    out.addHandler(logs.handler("run-worker", "json"))
    return out
