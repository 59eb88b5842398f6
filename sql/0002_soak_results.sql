-- One row per durability proof run by the scheduled crashdemo_soak job.
CREATE TABLE app.soak_results (
    wf_id           text PRIMARY KEY,
    crash_at        text NOT NULL,
    held            boolean NOT NULL,
    marks           jsonb NOT NULL,
    settle_ms       integer NOT NULL CHECK (settle_ms >= 0),
    dagster_run_id  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
