"""The durability proof job: s1 -> s2, each writing exactly one mark per workflow id.

Each op's mark and its step checkpoint commit in one transaction keyed by the app-level workflow
id (``wf_id``, carried in run config and the ``app/run_id`` tag), so a daemon retry or an operator
re-execution — a new Dagster run id — never applies a mark twice. ``s2`` has crash points: before
its commit (s1 committed, s2 not) and after its commit (before the op returns). A point either
pauses (an external killer SIGKILLs the process meanwhile) or, with ``pause_s == 0``, the worker
SIGKILLs itself there. Either happens on the first attempt only, so the retry can finish.
"""

# No "from __future__ import annotations" in op modules: Dagster reads config and resource
# types from the runtime annotations.
import os
import signal
import time
from typing import Any, Literal

import psycopg
from dagster import Config, In, Nothing, OpExecutionContext, Out, in_process_executor, job, op

from pipelines.jobs.steps import checkpointed
from pipelines.orchestration.lifecycle import JobTarget
from pipelines.resources.app_db import AppDatabase
from pipelines.store import checkpoint

CrashPoint = Literal["none", "s2_before_commit", "s2_after_commit"]
CRASH_POINTS: tuple[str, ...] = ("none", "s2_before_commit", "s2_after_commit")
RETRY_TAGS = {"dagster/max_retries": "3", "dagster/retry_strategy": "FROM_FAILURE"}


class S1Config(Config):
    wf_id: str


class S2Config(Config):
    wf_id: str
    crash_at: CrashPoint = "none"
    pause_s: float = 0.0
    fail_always: bool = False


def _mark(wf_id: str, step: str, dagster_run_id: str) -> checkpoint.Effect:
    def effect(conn: psycopg.Connection) -> None:
        # Deliberately no ON CONFLICT: a second mark must fail loudly, never dedupe silently.
        conn.execute(
            "INSERT INTO app.marks (run_id, step, dagster_run_id) VALUES (%s, %s, %s)",
            (wf_id, step, dagster_run_id),
        )

    return effect


def _crash_point(context: OpExecutionContext, point: str, pause_s: float) -> None:
    if pause_s > 0:
        context.log.info(f"crash point {point}: pausing {pause_s}s for an external kill")
        time.sleep(pause_s)
    else:
        context.log.info(f"crash point {point}: SIGKILL self")
        os.kill(os.getpid(), signal.SIGKILL)


# Ops pass nothing through Dagster's IO manager (files under DAGSTER_HOME): order is a Nothing
# dependency and each op's truth is its checkpoint row.
@op(out=Out(Nothing))
def s1(context: OpExecutionContext, config: S1Config, app_db: AppDatabase) -> None:
    with app_db.connection() as conn:
        mark = _mark(config.wf_id, "s1", context.run_id)

        def effect(c: psycopg.Connection) -> None:
            c.execute("INSERT INTO app.workflow_runs (wf_id) VALUES (%s) ON CONFLICT DO NOTHING", (config.wf_id,))
            mark(c)

        checkpointed(context, conn, run_id=config.wf_id, step="s1", work=lambda _attempt: ({"marked": "s1"}, effect))


@op(ins={"after_s1": In(Nothing)})
def s2(context: OpExecutionContext, config: S2Config, app_db: AppDatabase) -> None:
    first = False

    def work(attempt: int) -> tuple[dict[str, Any], checkpoint.Effect]:
        nonlocal first
        if config.fail_always:
            raise checkpoint.StepError("fail_always", "s2 fails on purpose (fail_always is set)")
        first = attempt == 1
        if first and config.crash_at == "s2_before_commit":
            _crash_point(context, config.crash_at, config.pause_s)
        return {"marked": "s2"}, _mark(config.wf_id, "s2", context.run_id)

    with app_db.connection() as conn:
        checkpointed(context, conn, run_id=config.wf_id, step="s2", work=work)
    if first and config.crash_at == "s2_after_commit":
        _crash_point(context, config.crash_at, config.pause_s)


@job(executor_def=in_process_executor, tags=RETRY_TAGS)
def crashdemo() -> None:
    s2(s1())


def run_config(wf_id: str, crash_at: str = "none", pause_s: float = 0.0, fail_always: bool = False) -> dict[str, Any]:
    return {
        "ops": {
            "s1": {"config": {"wf_id": wf_id}},
            "s2": {"config": {"wf_id": wf_id, "crash_at": crash_at, "pause_s": pause_s, "fail_always": fail_always}},
        }
    }


CRASHDEMO = JobTarget(name=crashdemo.name, run_config=run_config)
