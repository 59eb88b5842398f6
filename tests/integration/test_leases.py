"""Worker heartbeat leases (``pipelines.store.leases``) on a real PostgreSQL: an expired lease stays
dead, a restart supersedes it, the reaper judges a run by its lease, and a worker whose lease is
gone commits no step (the fence), while a commit holding the lease makes the reaper wait."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from pipelines.orchestration import reaper
from pipelines.store import checkpoint, leases, run_workers
from scripts.polling import poll

TTL = 30.0
SHORT_TTL = 5.0  # long enough for a commit to start under it, even on a busy machine


def _expire(conn: psycopg.Connection, worker: str) -> None:
    conn.execute("UPDATE app.worker_leases SET expires_at = clock_timestamp() - interval '1 second' WHERE worker = %s",
                 (worker,))


def test_a_lease_renews_until_it_expires_then_stays_dead(app_conn: psycopg.Connection) -> None:
    epoch = leases.acquire(app_conn, "w1", TTL)
    assert epoch == 1 and leases.renew(app_conn, "w1", epoch, TTL) and leases.is_valid(app_conn, "w1", epoch)
    _expire(app_conn, "w1")
    assert not leases.renew(app_conn, "w1", epoch, TTL)  # no late heartbeat revives it
    assert not leases.is_valid(app_conn, "w1", epoch)
    assert leases.acquire(app_conn, "w1", TTL) == 2  # the worker comes back under a new epoch
    assert not leases.renew(app_conn, "w1", 1, TTL) and leases.renew(app_conn, "w1", 2, TTL)


def test_a_restart_supersedes_a_still_valid_lease(app_conn: psycopg.Connection) -> None:
    old = leases.acquire(app_conn, "w1", TTL)
    new = leases.acquire(app_conn, "w1", TTL)
    assert new == old + 1
    assert leases.revoke(app_conn, "w1", old) and not leases.revoke(app_conn, "w1", new)


def test_release_ends_the_lease_at_once(app_conn: psycopg.Connection) -> None:
    epoch = leases.acquire(app_conn, "w1", TTL)
    leases.release(app_conn, "w1", epoch)
    assert leases.revoke(app_conn, "w1", epoch)


def _registered(app_conn: psycopg.Connection, run_id: str, lease: tuple[str, int]) -> None:
    run_workers.register(app_conn, run_id, lease)
    assert run_workers.lease_of(app_conn, run_id) == lease
    # A worker host is judged by its lease, never by a pid on the reaper's machine.
    assert run_workers.lookup(app_conn, run_id)[0] == lease[0]


def test_the_reaper_judges_a_leased_run_by_its_lease(app_conn: psycopg.Connection) -> None:
    epoch = leases.acquire(app_conn, "w1", TTL)
    _registered(app_conn, "dr-1", ("w1", epoch))
    assert reaper._gone(app_conn, "dr-1", started=time.time() - 3600, grace_s=10) is None
    _expire(app_conn, "w1")
    reason = reaper._gone(app_conn, "dr-1", started=time.time() - 3600, grace_s=10)
    assert reason is not None and "w1" in reason and "lease" in reason


def test_the_agent_marks_its_dead_processes_and_the_reaper_fails_their_runs(app_conn: psycopg.Connection) -> None:
    """On a live host (valid lease) a run whose process is gone is reaped once the host's agent
    marked it; a live process, and another lease's rows, are left alone."""
    epoch = leases.acquire(app_conn, "w1", TTL)
    other = leases.acquire(app_conn, "w2", TTL)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = run_workers.start_ticks(proc.pid)
    proc.wait()
    for run_id, lease in (("dr-dead", ("w1", epoch)), ("dr-live", ("w1", epoch)), ("dr-other", ("w2", other))):
        _registered(app_conn, run_id, lease)
    app_conn.execute("UPDATE app.run_workers SET pid = %s, pid_start_ticks = %s WHERE dagster_run_id IN "
                     "('dr-dead', 'dr-other')", (proc.pid, ticks))
    assert reaper._gone(app_conn, "dr-dead", started=time.time() - 3600, grace_s=10) is None  # not seen yet
    assert run_workers.mark_gone(app_conn, "w1", epoch) == ["dr-dead"]
    assert run_workers.mark_gone(app_conn, "w1", epoch) == []  # once
    reason = reaper._gone(app_conn, "dr-dead", started=time.time() - 3600, grace_s=10)
    assert reason is not None and "w1" in reason and "agent" in reason
    assert reaper._gone(app_conn, "dr-live", started=time.time() - 3600, grace_s=10) is None
    assert reaper._gone(app_conn, "dr-other", started=time.time() - 3600, grace_s=10) is None


def _begun(conn: psycopg.Connection, run: str) -> None:
    checkpoint.begin(conn, run_id=run, step="s", dagster_run_id="dr-1")


def _mark(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO app.marks (run_id, step, dagster_run_id) VALUES ('wf-fence', 's', 'dr-1')")


def _marks(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM app.marks WHERE run_id = 'wf-fence'").fetchone()[0]


def test_a_worker_whose_lease_expired_commits_nothing(app_conn: psycopg.Connection,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    epoch = leases.acquire(app_conn, "w1", TTL)
    monkeypatch.setenv("HARNESS_WORKER_LEASE", f"w1:{epoch}")
    _begun(app_conn, "wf-fence")
    _expire(app_conn, "w1")  # the host was cut off (or stopped) past its TTL; its run was reaped
    with pytest.raises(leases.LeaseLost, match="w1"):
        checkpoint.commit(app_conn, run_id="wf-fence", step="s", output={"n": 1}, effect=_mark)
    assert _marks(app_conn) == 0 and checkpoint.step_status(app_conn, "wf-fence", "s") == "running"
    # The re-execution on another host, under its own valid lease, commits the step once.
    other = leases.acquire(app_conn, "w2", TTL)
    monkeypatch.setenv("HARNESS_WORKER_LEASE", f"w2:{other}")
    _begun(app_conn, "wf-fence")
    assert checkpoint.commit(app_conn, run_id="wf-fence", step="s", output={"n": 1}, effect=_mark)[1]
    assert _marks(app_conn) == 1


def test_a_superseded_epoch_commits_nothing(app_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    old = leases.acquire(app_conn, "w1", TTL)
    leases.acquire(app_conn, "w1", TTL)
    monkeypatch.setenv("HARNESS_WORKER_LEASE", f"w1:{old}")
    _begun(app_conn, "wf-fence")
    with pytest.raises(leases.LeaseLost):
        checkpoint.commit(app_conn, run_id="wf-fence", step="s", output={}, effect=_mark)
    assert _marks(app_conn) == 0


def test_without_a_lease_commit_is_unchanged(app_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_WORKER_LEASE", raising=False)
    _begun(app_conn, "wf-fence")
    assert checkpoint.commit(app_conn, run_id="wf-fence", step="s", output={}, effect=_mark)[1]
    assert _marks(app_conn) == 1


def test_revoke_waits_for_a_commit_holding_the_lease(app_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reaper's revoke and a step commit are ordered: the commit that checked the lease valid
    finishes first, and only then does the reaper see the (now expired) lease as dead."""
    with psycopg.connect(app_db_url, autocommit=True) as worker, psycopg.connect(app_db_url, autocommit=True) as reap:
        _begun(worker, "wf-fence")
        epoch = leases.acquire(worker, "w1", SHORT_TTL)
        monkeypatch.setenv("HARNESS_WORKER_LEASE", f"w1:{epoch}")
        in_effect, release = threading.Event(), threading.Event()

        def slow_effect(conn: psycopg.Connection) -> None:
            _mark(conn)
            in_effect.set()
            assert release.wait(30)

        committing = threading.Thread(target=checkpoint.commit, args=(worker,),
                                      kwargs={"run_id": "wf-fence", "step": "s", "output": {}, "effect": slow_effect})
        committing.start()
        assert in_effect.wait(30)
        # The lease runs out while the commit holds it (an UPDATE would wait for the commit).
        poll("the lease to expire", lambda: not leases.is_valid(reap, "w1", epoch), 60, 0.1)
        verdict: list[bool] = []
        revoking = threading.Thread(target=lambda: verdict.append(leases.revoke(reap, "w1", epoch)))
        revoking.start()
        revoking.join(0.5)
        assert revoking.is_alive() and verdict == []  # blocked behind the commit's FOR SHARE
        release.set()
        committing.join(30)
        revoking.join(30)
        assert verdict == [True]
        assert _marks(reap) == 1 and checkpoint.step_status(reap, "wf-fence", "s") == "succeeded"


def test_a_commit_cut_off_inside_its_transaction_does_not_hold_the_reaper(
        app_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host cut off between its fence (the lease held FOR SHARE) and its commit: the reaper's
    revoke gives up after its lock timeout instead of waiting on it, and the server ends the
    session after the idle timeout a leased process's sessions carry, freeing the lease."""
    with psycopg.connect(app_db_url, autocommit=True) as reap:
        epoch = leases.acquire(reap, "w1", SHORT_TTL)
        monkeypatch.setenv("HARNESS_WORKER_LEASE", f"w1:{epoch}")
        # The session outlives the lease (its TTL is the agent's; the server's idle limit here is
        # longer than what is left of the lease), so the revoke below meets the lock.
        monkeypatch.setenv("HARNESS_LEASE_TTL_S", "15")
        assert leases.session_options() == "-c idle_in_transaction_session_timeout=15000"
        cut = psycopg.connect(app_db_url, autocommit=True, options=leases.session_options())
        cut.execute("BEGIN")
        leases.fence(cut)  # ... and nothing more from this host
        poll("the lease to expire", lambda: not leases.is_valid(reap, "w1", epoch), 60, 0.1)
        assert leases.revoke(reap, "w1", epoch, lock_timeout_s=0.2) is False  # held: ask again later
        poll("the server to end the idle session and the lease to be revoked",
             lambda: leases.revoke(reap, "w1", epoch, lock_timeout_s=0.2), 30, 0.2)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            cut.execute("COMMIT")
        cut.close()
    monkeypatch.delenv("HARNESS_WORKER_LEASE")
    assert leases.session_options() == ""
