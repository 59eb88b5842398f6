-- Tracing (issue 17, pipelines/telemetry.py): the W3C traceparent of the request that accepted a
-- run, so whoever launches it (the API, or the outbox reconciler after a crash) puts the run in
-- that request's trace. NULL when tracing is off: nothing reads it then.
ALTER TABLE app.runs ADD COLUMN traceparent text;

-- Set by a run worker once it ended its run span (exported at its exit). A retry's worker finds its
-- predecessor's row without it (that worker was killed) and records the lost attempt's span from
-- the run's rows instead.
ALTER TABLE app.run_workers ADD COLUMN span_ended_at timestamptz;
