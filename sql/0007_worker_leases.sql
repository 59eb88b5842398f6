-- Worker hosts of HARNESS_RUN_LAUNCHER=celery: one heartbeat lease per worker name, in Postgres
-- (the one thing every host shares), because a pid check cannot see another machine.
-- The worker's agent (scripts/worker.py) takes the lease with a new epoch each time it (re)starts
-- and renews expires_at every TTL/5, but only while the lease is still valid: an expired lease
-- stays dead, so its runs can be reaped and re-executed elsewhere without a race with a renewal.
-- All times are the server's clock_timestamp(), so no host's clock matters.
CREATE TABLE app.worker_leases (
    worker      text PRIMARY KEY,
    epoch       bigint NOT NULL CHECK (epoch >= 1),
    hostname    text NOT NULL,
    pid         integer NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Which lease a run executed under (NULL: the warm or stock launcher, judged by pid as before).
-- The reaper fails a STARTED run whose (worker, lease_epoch) is no longer a valid lease, and the
-- step checkpoint refuses to commit under such a lease (the fence).
ALTER TABLE app.run_workers
    ADD COLUMN worker text,
    ADD COLUMN lease_epoch bigint,
    ADD CONSTRAINT run_workers_lease_whole CHECK ((worker IS NULL) = (lease_epoch IS NULL));
