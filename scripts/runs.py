"""Runbook W10, CLI visibility: recent runs, and one run's RunView, read by the API's own code.

    python -m scripts.runs list [--status S] [--limit N]
    python -m scripts.runs status RUN
    python -m scripts.runs prune --older-than AGE [--soak] [--apply]

``list`` reads the same rows as ``GET /runs`` (pipelines.store.listing: each run's stored status,
kept current by the run_status_sync sensor); ``status`` builds the RunView as ``GET /runs/{id}``
does (api.runview, the status from lifecycle.status), without the sandbox probe. ``prune``
prints what pipelines.orchestration.retention would delete, and deletes it only with ``--apply``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from api import runview
from pipelines import clock
from pipelines.settings import load, parse_age
from pipelines.store import db, listing, repo

if TYPE_CHECKING:  # retention imports dagster, which only prune needs
    from pipelines.orchestration.retention import Doomed, SoakPlan

STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "canceled")


def age(then: datetime, now: datetime) -> str:
    seconds = max(int((now - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def list_runs(status: str | None, limit: int) -> int:
    settings = load()
    with db.connect(db.app_url(settings), autocommit=True) as conn:
        found = listing.runs(conn, listing.RunFilter(status=status), after=None, limit=limit)
    if not found:
        print("no runs" + (f" with status {status}" if status else "") +
              " (is this the stack's database? `mise run status`)", file=sys.stderr)
        return 0
    now = clock.now()
    rows = [["RUN", "INTENT", "STATUS", "ATTEMPTS", "AGE", "DAGSTER RUN"]]
    rows += [[r.run_id, r.intent_id, r.status, str(r.attempts), age(r.created_at, now), r.last_dagster_run_id or "-"]
             for r in found]
    print(table(rows))
    print(f"\n{len(found)} most recent run(s); status as last observed: `mise run runs:status RUN` reads it live",
          file=sys.stderr)
    return 0


def render(view: dict[str, Any]) -> str:
    lines = [f"run       {view['runId']}", f"intent    {view['intentId']}", f"status    {view['status']}",
             f"trace     {view['traceId'] or '-'}", f"created   {view['createdAt']}", "steps"]
    for step in view["steps"]:
        lines.append(f"  {step['name']:<8} {step['status']:<10} attempts {step['attempts']}")
        if "error" in step:
            lines.append(f"           {step['error']['kind']}: {step['error']['message']}")
    if view["oc"]:
        oc = view["oc"]
        lines.append(f"plan      {oc['summary']} ({oc['commands']} command(s); {oc['mode']}, model {oc['model']})")
    for result in view["sandbox"]["results"]:
        lines.append(f"  command {result['name']}: exit {result['exitCode']}"
                     + (" (timed out)" if result["timedOut"] else "") + f", {result['backend']}")
    lines.append(f"artifacts {len(view['artifacts'])}")
    lines += [f"  {a['name']} ({a['size']} bytes)" for a in view["artifacts"]]
    lines.append("dagster runs")
    lines += [f"  {r['runId']} {r['status']} retry {r['retryNumber']}" for r in view["dagsterRuns"]]
    if view["dagsterRuns"]:
        lines.append(f"Dagster UI: {view['dagsterRuns'][-1]['url']}")
    else:
        lines.append("Dagster UI: no Dagster run yet (the outbox launches it)")
    return "\n".join(lines)


def show(run_id: str) -> int:
    settings = load()
    with db.connect(db.app_url(settings), autocommit=True) as app_conn, \
            db.connect(db.dagster_url(settings), autocommit=True) as dagster_conn:
        run = repo.get_run(app_conn, run_id)
        if run is None:
            print(f"no run {run_id} (list them: `mise run runs:list`)", file=sys.stderr)
            return 1
        view = runview.build(app_conn, dagster_conn, run, dagster_ui_url=settings.dagster_ui_url, sandbox_status={})
    print(render(view))
    return 0


def _age(text: str) -> timedelta:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def prune(older_than: timedelta, *, soak: bool, apply: bool) -> int:
    from dagster import DagsterInstance  # heavy: only for this command

    from pipelines.jobs.intent import intent_job
    from pipelines.jobs.soak import crashdemo_soak
    from pipelines.orchestration import retention
    from scripts.stack import stack_env

    settings = load()
    now = clock.now()
    before = now - older_than
    db.ensure_dagster_storage(db.dagster_url(settings))  # a stack never started: empty, not missing
    with db.connect(db.app_url(settings), autocommit=True) as app_conn, \
            db.connect(db.dagster_url(settings), autocommit=True) as dagster_conn:
        if not apply:
            if soak:
                print(soak_report(retention.soak_plan(app_conn, dagster_conn, crashdemo_soak.name, before), before))
            else:
                print(runs_report(retention.plan(app_conn, dagster_conn, intent_job.name, before), before, now))
            print("dry run: nothing deleted; add --apply to delete", file=sys.stderr)
            return 0
        os.environ.update(stack_env(settings))  # DagsterInstance.get() reads dagster.yaml's env
        with DagsterInstance.get() as instance:
            if soak:
                print(soak_report(retention.prune_soak(app_conn, dagster_conn, instance, crashdemo_soak.name, before),
                                  before, done=True))
            else:
                print(runs_report(retention.prune(app_conn, dagster_conn, instance, intent_job.name, before),
                                  before, now, done=True))
    return 0


def runs_report(doomed: list[Doomed], before: datetime, now: datetime, *, done: bool = False) -> str:
    verb = "deleted" if done else "would delete"
    head = (f"{verb} {len(doomed)} finished run(s) created and last changed before {before.isoformat()}, "
            f"with {sum(len(d.dagster_run_ids) for d in doomed)} Dagster run(s) and their event logs "
            "(an intent goes with its last run)")
    if not doomed:
        return head
    rows = [["RUN", "STATUS", "AGE", "DAGSTER RUNS"]]
    rows += [[d.app_run_id, d.status or "(row already gone)", age(d.created_at, now) if d.created_at else "-",
              " ".join(d.dagster_run_ids) or "-"] for d in doomed]
    return head + "\n" + table(rows)


def soak_report(found: SoakPlan, before: datetime, *, done: bool = False) -> str:
    verb = "deleted" if done else "would delete"
    lines = [f"{verb}, of the soak, rows and runs older than {before.isoformat()}:",
             f"  {len(found.wf_ids)} proof workflow(s) (soak_results, marks, workflow_runs, steps)",
             f"  {len(found.dagster_run_ids)} crashdemo_soak Dagster run(s) and their event logs",
             f"  {len(found.worker_run_ids)} worker row(s) of runs no longer (or never) in Dagster's storage"]
    lines += [f"  workflow {wf_id}" for wf_id in found.wf_ids]
    lines += [f"  dagster run {run_id}" for run_id in found.dagster_run_ids]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="runs")
    sub = parser.add_subparsers(dest="command", required=True)
    listed = sub.add_parser("list", help="recent runs, newest first")
    listed.add_argument("--status", choices=STATUSES)
    listed.add_argument("--limit", type=int, default=20, choices=range(1, 201), metavar="1..200")
    status = sub.add_parser("status", help="one run's RunView")
    status.add_argument("run_id")
    pruned = sub.add_parser("prune", help="delete finished runs (or with --soak the soak's proofs) older than an age")
    pruned.add_argument("--older-than", type=_age, required=True, metavar="AGE", help="30d, 12h or 90m")
    pruned.add_argument("--soak", action="store_true", help="the soak's proof rows and runs instead of product runs")
    pruned.add_argument("--apply", action="store_true", help="delete (without it: only print what would go)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_runs(args.status, args.limit)
    if args.command == "prune":
        return prune(args.older_than, soak=args.soak, apply=args.apply)
    return show(args.run_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
