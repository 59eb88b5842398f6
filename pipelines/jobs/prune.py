"""Retention on a schedule: what ``mise run runs:prune -- --apply`` does (finished product runs),
or with ``soak`` what ``-- --soak --apply`` does (the soak's proofs), each on its own age and
cron. Off unless configured: a schedule exists only for an age set in the settings."""

# No "from __future__ import annotations" in op modules (Dagster reads runtime annotations).
from dagster import (
    Config,
    DefaultScheduleStatus,
    OpExecutionContext,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from pipelines import clock
from pipelines.jobs.intent import intent_job
from pipelines.jobs.soak import crashdemo_soak
from pipelines.orchestration import retention
from pipelines.resources.app_db import AppDatabase
from pipelines.settings import Settings, load, parse_age
from pipelines.store import db


class PruneConfig(Config):
    older_than: str  # 30d, 12h, 90m
    soak: bool = False


@op
def prune_old(context: OpExecutionContext, config: PruneConfig, app_db: AppDatabase) -> None:
    before = clock.now() - parse_age(config.older_than)
    with app_db.connection() as app_conn, db.connect(db.dagster_url(load()), autocommit=True) as dagster_conn:
        if config.soak:
            soak = retention.prune_soak(app_conn, dagster_conn, context.instance, crashdemo_soak.name, before)
            context.log.info(f"soak rows before {before.isoformat()}: deleted {len(soak.wf_ids)} workflow(s), "
                             f"{len(soak.dagster_run_ids)} Dagster run(s), {len(soak.worker_run_ids)} worker row(s)")
            return
        deleted = retention.prune(app_conn, dagster_conn, context.instance, intent_job.name, before)
    context.log.info(f"runs before {before.isoformat()}: deleted {len(deleted)} app run(s) with "
                     f"{sum(len(d.dagster_run_ids) for d in deleted)} Dagster run(s)")


@job(executor_def=in_process_executor)
def prune() -> None:
    prune_old()


def prune_schedules(settings: Settings) -> list[ScheduleDefinition]:
    """One schedule per age set in the settings (product runs, soak proofs); none by default."""
    wanted = [("prune_runs_schedule", settings.prune_older_than, settings.prune_cron, False),
              ("prune_soak_schedule", settings.soak_prune_older_than, settings.soak_prune_cron, True)]
    return [ScheduleDefinition(name=name, job=prune, cron_schedule=cron, default_status=DefaultScheduleStatus.RUNNING,
                               run_config={"ops": {"prune_old": {"config": {"older_than": age, "soak": soak}}}})
            for name, age, cron, soak in wanted if age]
