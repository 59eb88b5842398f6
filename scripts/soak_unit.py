"""Repeat the unit suite K times (default 20) in fresh processes to expose flakes.

    K=50 python -m scripts.soak_unit
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def main() -> int:
    k = int(os.environ.get("K", "20"))
    failures = []
    t0 = time.monotonic()
    for i in range(1, k + 1):
        result = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider",
                                 "-p", "no:randomly"], capture_output=True, text=True)
        last = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"[{i}/{k}] exit {result.returncode}: {last}", flush=True)
        if result.returncode != 0:
            failures.append((i, result.stdout[-4000:]))
    print(f"\n{k - len(failures)}/{k} green in {time.monotonic() - t0:.0f}s")
    for i, tail in failures:
        print(f"--- run {i} ---\n{tail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
