"""The smallest real job: one op that writes one row to the app database."""


from dagster import OpExecutionContext, in_process_executor, job, op

from pipelines.resources.app_db import AppDatabase


@op
def say_hello(context: OpExecutionContext, app_db: AppDatabase) -> str:
    message = f"hello from dagster run {context.run_id}"
    with app_db.connection() as conn:
        conn.execute(
            "INSERT INTO app.hello (dagster_run_id, message) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (context.run_id, message),
        )
    context.log.info(message)
    return message


@job(executor_def=in_process_executor, tags={"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_FAILURE"})
def hello_job() -> None:
    say_hello()
