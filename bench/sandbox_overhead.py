"""Per-run overhead of each sandbox backend against a bare ``subprocess.run(["true"])``.

    python -m bench.sandbox_overhead [--runs 60]

Measured in one process, one after the other, so the numbers are comparable on this machine.
Also measures collecting a work dir of 1,000 small files. Takes well under a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.sandbox import SandboxConfig, detect, run_sandbox_job
from pipelines.sandbox.collect import collect_files
from pipelines.sandbox.config import CollectCaps


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: imports, detect's cached probe, page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


def collection(files: int, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="sbx-bench-") as d:
        root = Path(d)
        for i in range(files):
            sub = root / f"d{i % 10}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{i:04}.txt").write_text(f"line {i}\r\n" * 4)
        caps = CollectCaps()
        return timed(lambda: collect_files(root, caps), runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    runs = parser.parse_args().runs
    process = SandboxConfig(backend="process", allow_degraded=True)
    rows: list[tuple[str, list[float]]] = [
        ('bare `subprocess.run(["true"])`', timed(lambda: subprocess.run(["true"], check=True), runs)),
    ]
    for label, cfg in (("bwrap", SandboxConfig()), ("process (degraded)", process)):
        status = detect(cfg)
        if not status["available"]:
            print(f"skipping {label}: {status['reason']}")
            continue
        job = {"command": ["true"]}
        rows.append((f"`run_sandbox_job` {label}", timed(lambda cfg=cfg, job=job: run_sandbox_job(job, config=cfg), runs)))
    bare = statistics.median(rows[0][1])
    collect_samples = collection(1000, max(10, runs // 5))

    uname = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"machine: kernel {uname}, {os.cpu_count()} cpus, Python {platform.python_version()}, runs={runs}")
    print()
    print("| what | median ms | p90 ms | overhead vs bare (median) |")
    print("|---|---:|---:|---:|")
    for label, samples in rows:
        med = statistics.median(samples)
        print(f"| {label} | {med:.1f} | {p90(samples):.1f} | {med - bare:+.1f} |")
    print(f"| collect 1,000 small files ({len(collect_samples)} runs) | {statistics.median(collect_samples):.1f} "
          f"| {p90(collect_samples):.1f} | n/a |")


if __name__ == "__main__":
    main()
