"""Run the whole `check` K times (default 3) with a CPU hog on every core beside it, and print
pass/fail per run: the suite must be green on a busy machine, not only on an idle one.

    K=3 python -m scripts.soak_check        (what `mise run -f test:soak:check` runs)

Each run's full output goes to ``.data/soak-check/run-<i>.log`` (and a failed run's stack logs to
``run-<i>-logs/``); the hog is one busy-looping
process per core at normal priority, started and stopped by PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from pipelines.settings import REPO_ROOT

LOG_DIR = REPO_ROOT / ".data" / "soak-check"
# pytest -q's last line, as mise prints it: "[test] 705 passed, 2 warnings in 329.00s (0:05:29)"
SUMMARY = re.compile(r"^\[test\] (\d+ (?:passed|failed|error).*) in ([\d.]+)s", re.M)


def start_hog(cores: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]


def stop_hog(hog: list[subprocess.Popen[bytes]]) -> None:
    for proc in hog:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def one_check(i: int) -> tuple[int, str, float]:
    """(exit code, pytest's summary, seconds) of one forced `check`."""
    log = LOG_DIR / f"run-{i}.log"
    t0 = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(["mise", "run", "-f", "check"], cwd=REPO_ROOT, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - t0
    if code != 0:  # the next run overwrites the suite's stack logs: keep this run's beside its log
        for stack_log in sorted((REPO_ROOT / ".data" / "test").glob("*/log")):
            shutil.copytree(stack_log, LOG_DIR / f"run-{i}-logs" / stack_log.parent.name, dirs_exist_ok=True)
    found = SUMMARY.findall(log.read_text())
    return code, (found[-1][0] if found else "no pytest summary"), seconds


def main() -> int:
    k = int(os.environ.get("K", "3"))
    cores = os.cpu_count() or 1
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"check x{k} beside a CPU hog on {cores} core(s) ({cores} busy loops); logs in {LOG_DIR}", flush=True)
    rows = []
    hog = start_hog(cores)
    try:
        for i in range(1, k + 1):
            code, summary, seconds = one_check(i)
            rows.append((i, code, summary, seconds))
            print(f"[{i}/{k}] {'PASS' if code == 0 else f'FAIL (exit {code})'} in {seconds:.0f}s: {summary}", flush=True)
    finally:
        stop_hog(hog)
    green = sum(1 for _, code, _, _ in rows if code == 0)
    print("\n| run | result | pytest | time |\n|---|---|---|---|")
    for i, code, summary, seconds in rows:
        print(f"| {i} | {'pass' if code == 0 else 'FAIL'} | {summary} | {seconds / 60:.1f} min |")
    print(f"\n{green}/{k} green with the CPU hog ({os.uname().nodename}, {cores} cores)")
    return 0 if green == k else 1


if __name__ == "__main__":
    sys.exit(main())
