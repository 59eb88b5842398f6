-- Finding runs (GET /runs, mise run runs:list) filters by status, which lifecycle.status derives
-- from the run's row and its Dagster run group — in another database, so no join can filter by
-- it. Each run stores the status last observed (lifecycle.observe writes it: the run_status_sync
-- sensor, GET /runs/{id}, cancel, resume), with its group's size and newest Dagster run.
-- An observation is written only when it is newer than the stored one: (status_version,
-- status_canceled) is (the newest update_timestamp in the group, whether the row was canceled),
-- and both only grow, so a slow reader can never overwrite a fresher status with a staler one.
ALTER TABLE app.runs
    ADD COLUMN status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN last_dagster_run_id text,
    ADD COLUMN status_version timestamp NOT NULL DEFAULT '0001-01-01',
    ADD COLUMN status_canceled boolean NOT NULL DEFAULT false,
    ADD COLUMN status_at timestamptz;
-- Until first observed, a run is what lifecycle.status says of a row with no Dagster run.
UPDATE app.runs SET status_at = created_at;
ALTER TABLE app.runs ALTER COLUMN status_at SET NOT NULL;

-- Keyset pagination in one stable order, (created_at DESC, run_id DESC), under every filter.
DROP INDEX app.runs_intent_idx;
CREATE INDEX runs_created_idx ON app.runs (created_at DESC, run_id DESC);
CREATE INDEX runs_status_created_idx ON app.runs (status, created_at DESC, run_id DESC);
CREATE INDEX runs_intent_created_idx ON app.runs (intent_id, created_at DESC, run_id DESC);
CREATE INDEX runs_trace_created_idx ON app.runs (trace_id, created_at DESC, run_id DESC) WHERE trace_id IS NOT NULL;
CREATE INDEX intents_created_idx ON app.intents (created_at DESC, intent_id DESC);
-- The sync sensor re-observes runs not yet final, least recently changed first.
CREATE INDEX runs_unsettled_idx ON app.runs (status_at) WHERE status IN ('queued', 'running', 'retrying');
