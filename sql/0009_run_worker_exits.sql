-- A Celery worker host's agent (scripts/worker.py) checks, with every heartbeat, the processes
-- that registered runs under its current lease: they are on its host, so it can. One that died
-- (a pool child SIGKILLed, say) is marked here. The lease alone cannot say it: the host is alive,
-- and Celery's own task state for it can be lost (a restarted Redis, or Redis down when the
-- child died), so the run would stay STARTED for good. The reaper fails a STARTED run so marked.
ALTER TABLE app.run_workers ADD COLUMN gone_at timestamptz;

-- What the agent reads each heartbeat: its lease's rows not yet found gone.
CREATE INDEX run_workers_live_by_lease ON app.run_workers (worker, lease_epoch) WHERE gone_at IS NULL;
