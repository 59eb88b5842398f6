"""The scheduled durability record: a small batch of crash proofs, each recorded in Postgres and
summarised as a materialization operators can watch in the UI.

Each proof runs crashdemo in a child process that SIGKILLs itself at a crash point (after s1
committed, or after s2 committed), then runs it again under the same workflow id, and counts
the marks: exactly one per step, or the proof did not hold.
"""

# No "from __future__ import annotations" in op modules (Dagster reads runtime annotations).
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetMaterialization,
    AssetSpec,
    Config,
    DefaultScheduleStatus,
    Failure,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)
from psycopg.types.json import Jsonb

from pipelines.resources.app_db import AppDatabase
from pipelines.settings import REPO_ROOT, load
from pipelines.store.retention import soak_wf_prefix

SOAK_KEY = ["durability", "crashdemo_soak"]
SOAK_ASSET = AssetSpec(SOAK_KEY, group_name="durability", kinds={"postgres"},
                       description="The scheduled durability record: each batch's count of crash proofs that "
                                   "held exactly once (rows in app.soak_results); materialized by crashdemo_soak.")
POINTS = ("s2_before_commit", "s2_after_commit")


class SoakConfig(Config):
    proofs: int = 4
    child_timeout_s: float = 120.0


def _child(wf_id: str, crash_at: str, url: str, timeout_s: float) -> int:
    # The URL goes on stdin: the child inherits this environment, and a password stays out of ps.
    return subprocess.run([sys.executable, "-m", "pipelines.jobs.crashdemo_child", wf_id, crash_at], cwd=REPO_ROOT,
                          input=url, text=True, timeout=timeout_s, capture_output=True).returncode


@op
def prove_batch(context: OpExecutionContext, config: SoakConfig, app_db: AppDatabase) -> Iterator[Any]:
    settle: list[float] = []
    held = 0
    for i in range(config.proofs):
        point = POINTS[i % len(POINTS)]
        # The prefix keeps soak proofs apart from every other row (pruned on their own schedule).
        wf_id = f"{soak_wf_prefix(context.run_id)}{i}-{secrets.token_hex(3)}"
        crashed = _child(wf_id, point, app_db.url, config.child_timeout_s)
        t0 = time.monotonic()
        recovered = _child(wf_id, "none", app_db.url, config.child_timeout_s)
        settle_ms = int((time.monotonic() - t0) * 1000)
        with app_db.connection() as conn:
            marks = dict(conn.execute("SELECT step, count(*) FROM app.marks WHERE run_id = %s GROUP BY step",
                                      (wf_id,)).fetchall())
            ok = crashed == -9 and recovered == 0 and marks == {"s1": 1, "s2": 1}
            conn.execute(
                "INSERT INTO app.soak_results (wf_id, crash_at, held, marks, settle_ms, dagster_run_id) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (wf_id, point, ok, Jsonb(marks), settle_ms, context.run_id))
        context.log.info(f"{wf_id} {point}: crash exit {crashed}, recovery exit {recovered}, marks {marks}")
        held += ok
        settle.append(settle_ms / 1000)
    yield AssetMaterialization(asset_key=SOAK_KEY, metadata={
        "runs": config.proofs, "held": held, "p50_settle_s": round(statistics.median(settle), 3),
        "max_settle_s": round(max(settle), 3)})
    if held != config.proofs:
        raise Failure(description=f"exactly-once held for {held}/{config.proofs} proofs")
    yield Output(held)


@job(executor_def=in_process_executor)
def crashdemo_soak() -> None:
    prove_batch()


crashdemo_soak_schedule = ScheduleDefinition(
    job=crashdemo_soak,
    cron_schedule=load().soak_cron,  # hourly by default
    default_status=DefaultScheduleStatus.RUNNING,
)
