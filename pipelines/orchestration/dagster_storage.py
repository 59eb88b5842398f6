"""Dagster's Postgres run storage, remembering the schema migrations it has already seen.

dagster-postgres 0.29 asks Postgres for the ``runs`` table's columns (SQLAlchemy reflection: a
pg_catalog query plus its Python-side parsing) on every run status change and in several run
queries, only to learn whether an optional migration ran: 7 reflections per run in the run
worker and 8 in the webserver, ~4 ms of Postgres time each, the largest per-run Postgres cost
after the event inserts themselves (measured with ``log_min_duration_statement`` during a burst).
A column, once added, stays: a positive answer is cached for the storage's life; a negative one
is asked again every time, so ``dagster instance migrate`` is picked up without a restart.

It also owns the one constraint that makes launching an app run idempotent: at most one *root*
run (a run that is no re-execution of another) per ``app/run_id`` tag, a unique partial index
on the ``runs`` table, created with the tables. Dagster's GraphQL ``launchRun`` cannot be given a
run id, so the uniqueness is stated on what a launch does write: a second root for the same app
run fails at its insert (``DagsterRunAlreadyExists``) whoever launches it and whatever failed
before (pipelines.orchestration.lifecycle).

And it adds a run with its tags in one statement. dagster-postgres's engine is AUTOCOMMIT and
``SqlRunStorage._core_add_run`` inserts the ``runs`` row, then its ``run_tags`` rows, as two
commits: a process killed between them (a chaos run SIGKILLed the webserver there) left a run
whose tags exist only in its ``run_body``, so everything that reads ``run_tags`` (run groups, tag
filters, the UI's run list) lost it. One ``WITH … INSERT`` statement commits both or neither.

Configured in ``dagster_home/dagster.yaml`` as ``run_storage``; event log and schedule storage
stay dagster-postgres's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from dagster_postgres import PostgresRunStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from pipelines.orchestration.dagster_internals import DagsterRunAlreadyExists, RunsTable, RunTagsTable
from pipelines.orchestration.dagster_runs import APP_RUN_TAG, ONE_ROOT_INDEX, PARENT_RUN_TAG, RUN_TAGS_SQL

# Roots only: Dagster tags every re-execution and retry with its parent run id.
_ONE_ROOT = (f"CREATE UNIQUE INDEX IF NOT EXISTS {ONE_ROOT_INDEX} ON runs (({RUN_TAGS_SQL} ->> '{APP_RUN_TAG}')) "
             f"WHERE NOT ({RUN_TAGS_SQL} ? '{PARENT_RUN_TAG}')")


class SchemaCachingPostgresRunStorage(PostgresRunStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._present: set[str] = set()  # before super().__init__, which may already ask
        super().__init__(*args, **kwargs)
        self._ensure_one_root_per_app_run()

    def _ensure_one_root_per_app_run(self) -> None:
        with self.connect() as conn:
            if conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": ONE_ROOT_INDEX}).scalar() is not None:
                return
            try:
                conn.execute(sa.text(_ONE_ROOT))
            except sa.exc.IntegrityError as exc:  # roots launched twice before this index existed
                raise RuntimeError(f"cannot create {ONE_ROOT_INDEX}: some app runs already have two root "
                                   f"Dagster runs (tag {APP_RUN_TAG}); resolve them first: {exc.orig}") from exc
            except sa.exc.ProgrammingError:  # another process created it at the same moment
                if conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": ONE_ROOT_INDEX}).scalar() is None:
                    raise

    def _core_add_run(self, col_values: dict[str, Any], tags: Mapping[str, str]) -> None:
        new_run = sa.insert(RunsTable).values(**col_values).returning(RunsTable.c.run_id).cte("new_run")
        statement: sa.Executable
        if tags:
            new_tags = sa.values(sa.column("key", sa.Text), sa.column("value", sa.Text),
                                 name="new_tags").data(list(tags.items()))
            statement = sa.insert(RunTagsTable).from_select(
                ["run_id", "key", "value"],
                sa.select(new_run.c.run_id, new_tags.c.key, new_tags.c.value).select_from(
                    new_run.join(new_tags, sa.true())))
        else:
            statement = sa.select(new_run.c.run_id)
        with self.connect() as conn:
            try:
                conn.execute(statement)
            except sa.exc.IntegrityError as exc:  # run_id or the one-root index: run_tags has no key of its own
                raise DagsterRunAlreadyExists from exc

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> SchemaCachingPostgresRunStorage:
        return cls(inst_data=inst_data, postgres_url=pg_url_from_config(config_value),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))

    def _once_present(self, name: str, check: Callable[[], bool]) -> bool:
        if name in self._present:
            return True
        present = check()
        if present:
            self._present.add(name)
        return present

    def has_run_stats_index_cols(self) -> bool:
        return self._once_present("run_stats_index_cols", super().has_run_stats_index_cols)

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._once_present("bulk_actions_selector_cols", super().has_bulk_actions_selector_cols)

    def has_backfill_id_column(self) -> bool:
        return self._once_present("backfill_id_column", super().has_backfill_id_column)

    def has_bulk_action_job_name_column(self) -> bool:
        return self._once_present("bulk_action_job_name_column", super().has_bulk_action_job_name_column)

    def has_backfill_tags_table(self) -> bool:
        return self._once_present("backfill_tags_table", super().has_backfill_tags_table)
