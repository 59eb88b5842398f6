"""Orchestration plumbing: the Dagster client, Dagster's run storage, the run lifecycle (launch,
reconcile, cancel, resume, status) and the reaper. Used by the API, the sensors and the launcher."""
