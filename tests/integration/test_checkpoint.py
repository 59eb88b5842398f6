"""Step checkpoints: effects and the step record commit together, exactly once."""

import threading

import psycopg
import pytest

from pipelines.store import checkpoint


def _insert_mark(run_id: str, step: str):
    def effect(conn: psycopg.Connection) -> None:
        conn.execute("INSERT INTO app.marks (run_id, step, dagster_run_id) VALUES (%s, %s, 'd')", (run_id, step))

    return effect


def _marks(conn: psycopg.Connection, run_id: str) -> int:
    return conn.execute("SELECT count(*) FROM app.marks WHERE run_id = %s", (run_id,)).fetchone()[0]


def test_second_execution_reuses_output_and_applies_nothing(app_conn: psycopg.Connection) -> None:
    a = checkpoint.begin(app_conn, run_id="wf1", step="s1", dagster_run_id="d1")
    assert (a.attempt, a.done) == (1, False)
    out, applied = checkpoint.commit(app_conn, run_id="wf1", step="s1", output={"n": 1}, effect=_insert_mark("wf1", "s1"))
    assert applied and out == {"n": 1}
    again = checkpoint.begin(app_conn, run_id="wf1", step="s1", dagster_run_id="d2")
    assert again.done and again.output == {"n": 1} and again.attempt == 1
    assert _marks(app_conn, "wf1") == 1


def test_failed_effect_rolls_back_the_step(app_conn: psycopg.Connection) -> None:
    checkpoint.begin(app_conn, run_id="wf2", step="s1", dagster_run_id="d1")

    def boom(conn: psycopg.Connection) -> None:
        _insert_mark("wf2", "s1")(conn)
        raise RuntimeError("effect failed after its first write")

    with pytest.raises(RuntimeError):
        checkpoint.commit(app_conn, run_id="wf2", step="s1", output={}, effect=boom)
    assert _marks(app_conn, "wf2") == 0
    retry = checkpoint.begin(app_conn, run_id="wf2", step="s1", dagster_run_id="d2")
    assert (retry.attempt, retry.done) == (2, False)


def test_racing_commits_apply_the_effect_once(app_db_url: str) -> None:
    with psycopg.connect(app_db_url, autocommit=True) as conn:
        checkpoint.begin(conn, run_id="wf3", step="s2", dagster_run_id="d1")
    applied: list[bool] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        with psycopg.connect(app_db_url, autocommit=True) as conn:
            barrier.wait()
            applied.append(checkpoint.commit(conn, run_id="wf3", step="s2", output={"by": i},
                                             effect=_insert_mark("wf3", "s2"))[1])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(applied) == [False, False, False, True]
    with psycopg.connect(app_db_url) as conn:
        assert _marks(conn, "wf3") == 1


def test_duplicate_mark_is_an_error_not_a_silent_dedupe(app_conn: psycopg.Connection) -> None:
    _insert_mark("wf4", "s1")(app_conn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert_mark("wf4", "s1")(app_conn)
