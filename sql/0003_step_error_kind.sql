-- A failed step says why in two parts: a machine-readable kind (fixture_missing, sandbox_error, …)
-- and the message; the RunView shows both.
ALTER TABLE app.run_steps ADD COLUMN error_kind text CHECK (error_kind ~ '^[a-z][a-z0-9_]{0,63}$');

-- The outbox reconciler's candidates: committed runs whose launch was never recorded.
CREATE INDEX runs_unlaunched_idx ON app.runs (created_at) WHERE launched_at IS NULL AND canceled_at IS NULL;
