"""The Dagster UI as an operator sees it, checked in a real headless browser (runbook W3's last
step: open the RunView's link).

For one finished intent run: its run page (the RunView's ``url``) shows the three steps and their
materializations on intent/plan, intent/sandbox and intent/result; its tags dialog shows the app
run id and trace id and not the warm pool's worker-pid plumbing; the run list shows the app tags
without that plumbing; the asset catalog lists the declared keys with their group and
description; the lineage view shows plan -> sandbox -> result. A screenshot of each page goes to
the output folder for a person to look at.

``mise run -f ui:check`` runs it against the running stack (`mise run up`) for a fresh demo
intent, screenshots under ``.data/ui-check``; ``tests/integration/test_stack_e2e.py`` runs it
against the suite's stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from pipelines.launcher.protocol import WORKER_PID_START_TAG, WORKER_PID_TAG
from pipelines.settings import load
from scripts.browser import Browser, BrowserError
from scripts.demo import DEMO_INTENT, submit_and_wait

STEPS = ["oc_plan", "sandbox_run", "persist"]
ASSETS = ["intent / plan", "intent / sandbox", "intent / result"]  # how the UI writes an AssetKey
HIDDEN = [WORKER_PID_TAG, WORKER_PID_START_TAG]
# A click on the button whose whole label is the argument (the UI's buttons carry no stable ids).
_CLICK = ("(() => {{ const b = [...document.querySelectorAll('button')]"
          ".find(e => e.innerText.trim() === {label!r}); if (b) b.click(); return Boolean(b); }})()")


def _refuse_shown(page: str, where: str) -> None:
    shown = [tag for tag in HIDDEN if tag in page]
    if shown:
        raise BrowserError(f"{where} shows internal tags {shown}")


def check(view: dict, out_dir: Path, timeout_s: float = 60) -> list[Path]:
    """Every page check for the finished run ``view`` (a RunView); the screenshots taken."""
    (run,) = [r for r in view["dagsterRuns"] if r["status"] == "SUCCESS"]
    ui = run["url"].rsplit("/runs/", 1)[0]
    shots = []
    with Browser() as browser:
        browser.goto(run["url"])
        browser.wait_for_text([*STEPS, *ASSETS, "RUN_SUCCESS", f"app_run_id\n{view['runId']}"], timeout_s)
        shots.append(browser.screenshot(out_dir / "run.png"))

        if not browser.evaluate(_CLICK.format(label="View tags and config")):
            raise BrowserError("the run page has no 'View tags and config' button")
        page = browser.wait_for_text([f"app/run_id: {view['runId']}", f"app/trace_id: {view['traceId']}"], timeout_s)
        _refuse_shown(page, "the run's tags dialog")
        shots.append(browser.screenshot(out_dir / "run-tags.png"))

        browser.goto(f"{ui}/runs")
        page = browser.wait_for_text([run["runId"][:8], f"app/run_id: {view['runId']}"], timeout_s)
        _refuse_shown(page, "the run list")
        shots.append(browser.screenshot(out_dir / "runs.png"))

        browser.goto(f"{ui}/assets")
        browser.wait_for_text([*ASSETS, "The OC producer's schema-checked plan", "harness", "Materialized"],
                              timeout_s)
        shots.append(browser.screenshot(out_dir / "catalog.png"))

        browser.goto(f"{ui}/assets/intent/sandbox?view=lineage")
        browser.wait_for_text(["Upstream", "Downstream", "plan", "result", "Materialized"], timeout_s)
        shots.append(browser.screenshot(out_dir / "lineage.png"))
    return shots


def main() -> int:
    settings = load()
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=40) as client:
        view = submit_and_wait(client, DEMO_INTENT, trace_id="ui-check")
    if view["status"] != "succeeded":
        print(f"run {view['runId']} ended {view['status']}: nothing to check (`mise run demo` explains)",
              file=sys.stderr)
        return 1
    out_dir = settings.data_dir / "ui-check"
    for shot in check(view, out_dir):
        print(f"screenshot {shot}")
    print(f"the Dagster UI shows run {view['runId']} as it should ({view['dagsterRuns'][-1]['url']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
