-- Failure alerts (the alert outbox): one row per (event, webhook URL). lifecycle.observe inserts
-- them in the same transaction that first stores a run as failed-for-good or canceled, so an
-- alert is never lost to a crash or restart; the alert_delivery sensor posts due rows and
-- records each attempt here.
-- event_id is derived from what the event is about (pipelines/orchestration/alerts.py), so
-- observing the same outcome again inserts nothing (the primary key), and receivers deduplicate
-- on it: delivery is at least once (a crash between a receiver's 2xx and delivered_at's commit
-- sends it again).
CREATE TABLE app.alerts (
    event_id        text NOT NULL CHECK (event_id ~ '^evt_[0-9a-f]{32}$'),
    url             text NOT NULL,
    run_id          text NOT NULL REFERENCES app.runs (run_id) ON DELETE CASCADE,
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_error      text,
    PRIMARY KEY (event_id, url)
);
-- The delivery sensor's one query: undelivered rows by when they are due.
CREATE INDEX alerts_due_idx ON app.alerts (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX alerts_run_idx ON app.alerts (run_id);
