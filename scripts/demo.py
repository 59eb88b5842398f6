"""The main job: submit the demo intent over HTTP to the running stack, wait, print its RunView.

Runs after `mise run up`. The OC producer replays the recorded fixture for this intent (no model
provider needed); the sandbox runs the plan's commands for real.
"""

from __future__ import annotations

import json
import sys
import time

import httpx

from pipelines.settings import Settings, load

DEMO_INTENT = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}


def main() -> int:
    settings = load()
    base = f"http://127.0.0.1:{settings.api_port}"
    t0 = time.monotonic()
    with httpx.Client(base_url=base, timeout=40) as client:
        view = submit_and_wait(client, DEMO_INTENT, trace_id="quickstart-demo")
    print(json.dumps(view, indent=2))
    print(f"\nintent {view['intentId']} -> run {view['runId']}: {view['status']} in {time.monotonic() - t0:.1f}s",
          file=sys.stderr)
    for r in view["dagsterRuns"]:
        print(f"Dagster UI: {r['url']}", file=sys.stderr)
    if view["status"] == "succeeded":
        return 0
    explain(view, settings)
    return 1


def submit_and_wait(client: httpx.Client, intent: dict, *, trace_id: str, deadline_s: float = 120) -> dict:
    """POST the intent, run it, long-poll its RunView until it settles (or the deadline passes)."""
    created = client.post("/intents", json=intent)
    created.raise_for_status()
    run = client.post(f"/intents/{created.json()['intentId']}/run", json={"traceId": trace_id})
    run.raise_for_status()
    run_id = run.json()["runId"]
    view: dict = client.get(f"/runs/{run_id}").json()
    deadline = time.monotonic() + deadline_s
    while view["status"] not in ("succeeded", "failed", "canceled") and time.monotonic() < deadline:
        view = client.get(f"/runs/{run_id}", params={"wait": 25}).json()
    return view


def explain(view: dict, settings: Settings) -> None:
    """Why the run did not succeed, where a person looks first: each failed step's error, what the
    sandbox detected, and the log to read next."""
    failed = [s for s in view["steps"] if s.get("error")]
    for step in failed:
        print(f"step {step['name']} failed ({step['error']['kind']}): {step['error']['message']}", file=sys.stderr)
    if not failed:
        print(f"no step recorded an error (status {view['status']}); the run's own events are in the Dagster UI",
              file=sys.stderr)
    if view["sandbox"]["available"] is False:
        print(f"the sandbox is unavailable (backend {view['sandbox']['backend']}): see `mise run sbx:live:smoke` "
              "and GET /healthz", file=sys.stderr)
    worker_log = "pool.log" if settings.run_launcher == "warm" else "daemon.log"
    print(f"run worker log: {settings.log_dir / worker_log}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
