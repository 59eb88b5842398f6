-- Product tables live in schema "app"; Dagster's own tables live in another database.
CREATE SCHEMA IF NOT EXISTS app;

-- An intent as accepted at the front door. idempotency_key + request_sha256 make a replayed
-- POST return the same intent and a conflicting one detectable.
CREATE TABLE app.intents (
    intent_id       text PRIMARY KEY CHECK (intent_id ~ '^int_[0-9a-f]{32}$'),
    goal            text NOT NULL CHECK (goal <> ''),
    inputs          jsonb NOT NULL CHECK (jsonb_typeof(inputs) = 'object'),
    constraints     jsonb NOT NULL CHECK (jsonb_typeof(constraints) = 'object'),
    connectors      jsonb NOT NULL CHECK (jsonb_typeof(connectors) = 'array'),
    idempotency_key text UNIQUE,
    request_sha256  text NOT NULL,
    created_at      timestamptz NOT NULL
);

-- One app-level run of an intent. run_id is the durable identity carried by every Dagster run of
-- its run group (tag app/run_id): retries and re-executions share it.
CREATE TABLE app.runs (
    run_id          text PRIMARY KEY CHECK (run_id ~ '^run_[0-9a-f]{32}$'),
    intent_id       text NOT NULL REFERENCES app.intents (intent_id),
    trace_id        text,
    options         jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key text UNIQUE,
    request_sha256  text NOT NULL,
    launched_at     timestamptz,
    canceled_at     timestamptz,
    created_at      timestamptz NOT NULL
);
CREATE INDEX runs_intent_idx ON app.runs (intent_id);

-- Step checkpoints: one row per (app run, step). A step's effects commit in the same
-- transaction that flips its row to 'succeeded' with the output; a retry or re-execution reads
-- the output back instead of redoing the work. run_id is the app-level id of any job (an
-- app.runs row or a crashdemo workflow), so no foreign key.
CREATE TABLE app.run_steps (
    run_id          text NOT NULL,
    step            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    output          jsonb,
    error           text,
    dagster_run_id  text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    PRIMARY KEY (run_id, step),
    CHECK ((status = 'succeeded') = (output IS NOT NULL AND finished_at IS NOT NULL))
);

-- Files and documents a step produced, committed with that step's checkpoint.
CREATE TABLE app.artifacts (
    run_id      text NOT NULL,
    step        text NOT NULL,
    name        text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content     bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, name),
    FOREIGN KEY (run_id, step) REFERENCES app.run_steps (run_id, step)
);

-- Each durability-proof (crashdemo) workflow.
CREATE TABLE app.workflow_runs (
    wf_id       text PRIMARY KEY CHECK (wf_id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    crash_at    text NOT NULL DEFAULT 'none',
    pause_s     double precision NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The runbook's proof rows: (run_id = workflow id, step). The primary key makes a second mark
-- for a step an error, never a silent duplicate; the step code must not even try.
CREATE TABLE app.marks (
    run_id          text NOT NULL,
    step            text NOT NULL,
    dagster_run_id  text NOT NULL,
    marked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

-- Which process executes each Dagster run (written by the run worker at run start), so the
-- reaper and the durability proof can tell a live worker from a dead one: pid plus the process
-- start time in clock ticks since boot, which a recycled pid does not share.
CREATE TABLE app.run_workers (
    dagster_run_id  text PRIMARY KEY,
    hostname        text NOT NULL,
    pid             integer NOT NULL,
    pid_start_ticks bigint NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now()
);

-- Every demo job run of the quick start writes one row here.
CREATE TABLE app.hello (
    dagster_run_id  text PRIMARY KEY,
    message         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
