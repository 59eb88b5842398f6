"""A live intent end to end with the real model: `mise run demo:live -- "count the words in a short poem"`.

Brings the stack up with live mode allowed (HARNESS_OC_MODES=replay,live unless set; with OC_BASE_URL
unset that starts the embedded model server too), submits the goal as an intent over HTTP, runs it with
``{"oc": {"mode": "live"}}``, waits and prints the RunView: the model that planned, its token usage,
latency and finish reason, the plan, and what the sandbox did with it. A small model's plan may be
poor: this then says so. Exit 0 only when the run succeeded and every planned command exited 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx

from pipelines.settings import load
from scripts import stack
from scripts.demo import explain

FINAL = ("succeeded", "failed", "canceled")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("goal", nargs="+", help="the intent's goal, in words")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wait-s", type=float, default=600.0, help="give up waiting for the run after this")
    args = parser.parse_args(argv)
    goal = " ".join(args.goal)
    os.environ.setdefault("HARNESS_OC_MODES", "replay,live")
    settings = load()
    if "live" not in settings.oc_modes:
        print(f"HARNESS_OC_MODES={','.join(settings.oc_modes)} does not allow live", file=sys.stderr)
        return 2
    stack.up(settings)
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = {"authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    with httpx.Client(base_url=base, timeout=40, headers=headers) as client:
        intent = client.post("/intents", json={"goal": goal, "inputs": {}, "constraints": {}, "connectors": []})
        intent.raise_for_status()
        intent_id = intent.json()["intentId"]
        t0 = time.monotonic()
        run = client.post(f"/intents/{intent_id}/run",
                          json={"traceId": "demo-live", "oc": {"mode": "live", "seed": args.seed}})
        if run.status_code == 403:
            print(f"the running stack refuses live mode ({run.json()}); it was started without it: "
                  "`mise run down`, then `HARNESS_OC_MODES=replay,live mise run demo:live -- ...`", file=sys.stderr)
            return 2
        run.raise_for_status()
        run_id = run.json()["runId"]
        view = client.get(f"/runs/{run_id}").json()
        deadline = time.monotonic() + args.wait_s
        while view["status"] not in FINAL and time.monotonic() < deadline:
            view = client.get(f"/runs/{run_id}", params={"wait": 25}).json()
        artifacts = {a["name"]: a for a in view["artifacts"]}

        def artifact(name: str) -> str:
            got = client.get(f"/runs/{run_id}/artifacts/{name}")
            return got.text if got.status_code == 200 else ""

        plan = json.loads(artifact("plan.json")) if "plan.json" in artifacts else None
        stdout = {r["name"]: artifact(f"sandbox/{r['name']}/stdout") for r in view["sandbox"]["results"]
                  if f"sandbox/{r['name']}/stdout" in artifacts}
    print(json.dumps(view, indent=2, ensure_ascii=False))
    oc = view.get("oc")
    if oc:
        usage = oc.get("usage") or {}
        print(f"\nplanned by {oc['model']} ({oc['mode']}, dialect {oc.get('dialect')}): "
              f"{usage.get('totalTokens', '?')} tokens, {oc['latencyMs']} ms, finish_reason={oc['finishReason']}\n"
              f"plan: {oc['summary']}", file=sys.stderr)
    if plan:
        for f in plan["files"]:
            print(f"  file {f['path']}: {f['content']!r}", file=sys.stderr)
        for c in plan["commands"]:
            print(f"  run  {c['name']}: {c['run']!r} (timeout {c['timeoutMs']} ms)", file=sys.stderr)
    results = view["sandbox"]["results"]
    for result in results:
        print(f"  command {result['name']}: exit {result['exitCode']}{' (timed out)' if result['timedOut'] else ''}"
              f"; stdout {stdout.get(result['name'], '')[:200]!r}", file=sys.stderr)
    print(f"intent {intent_id} -> run {run_id}: {view['status']} in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    if view["status"] != "succeeded":
        explain(view, settings)
        return 1
    failed = [r["name"] for r in results if r["exitCode"] != 0 or r["timedOut"]]
    if failed:
        # The harness did its job (planned, ran, persisted); the plan did not: say which, exit non-zero.
        print(f"the run succeeded, but {len(failed)} of {len(results)} planned command(s) failed in the sandbox "
              f"({', '.join(failed)}): the model's plan did not do the goal", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
