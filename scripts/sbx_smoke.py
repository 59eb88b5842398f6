"""End-to-end smoke test of the sandbox on this host: one real job, checked, result printed.

    python -m scripts.sbx_smoke

Exits non-zero if the default (bwrap) backend is unavailable or any check fails.
"""

from __future__ import annotations

import hashlib
import json
import sys

from pipelines.sandbox import PROPERTIES, SandboxError, detect, run_sandbox_job

JOB = {
    "command": (
        "set -e; "
        "sort words.txt | uniq -c | sed 's/^ *//' > counts.txt; "
        "python3 -c 'import json; print(json.dumps({\"lines\": sum(1 for _ in open(\"counts.txt\"))}))' > summary.json; "
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > interfaces.txt; "
        "cat summary.json"
    ),
    "files": [{"path": "words.txt", "content": "b\r\na\r\nb\r\nc\r\n"}],
    "timeout_ms": 15000,
    "limits": {"cpu_s": 5, "memory_mb": 256, "pids": 32, "file_mb": 4, "output_kb": 16},
}

EXPECTED_COUNTS = "1 a\n2 b\n1 c\n"


def check(result: dict) -> list[str]:
    files = {f["path"]: f for f in result["files"]}
    problems = []
    if result["exitCode"] != 0 or result["timedOut"]:
        problems.append(f"exit {result['exitCode']}, timedOut={result['timedOut']}: {result['stderr'][:300]}")
    if result["isolation"] != {"backend": "bwrap", "enforced": sorted(PROPERTIES)}:
        problems.append(f"isolation is {result['isolation']}, expected bwrap enforcing everything")
    if [f["path"] for f in result["files"]] != ["counts.txt", "interfaces.txt", "summary.json", "words.txt"]:
        problems.append(f"unexpected files {sorted(files)}")
        return problems
    if files["counts.txt"].get("content") != EXPECTED_COUNTS:
        problems.append(f"counts.txt is {files['counts.txt'].get('content')!r}")
    if files["interfaces.txt"].get("content") != "lo\n":
        problems.append(f"sandbox saw interfaces {files['interfaces.txt'].get('content')!r}")
    if json.loads(result["stdout"]) != {"lines": 3}:
        problems.append(f"stdout is {result['stdout']!r}")
    words = files["words.txt"]
    if words["content"] != "b\na\nb\nc\n" or words["sha256"] != hashlib.sha256(b"b\r\na\r\nb\r\nc\r\n").hexdigest():
        problems.append("words.txt not normalised as documented (content \\n, hash of raw CRLF bytes)")
    return problems


def main() -> int:
    status = detect()
    print(f"detect: {json.dumps(status)}", file=sys.stderr)
    try:
        result = run_sandbox_job(JOB)
    except SandboxError as exc:
        print(f"sbx_smoke: FAIL: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    problems = check(result)
    for problem in problems:
        print(f"sbx_smoke: FAIL: {problem}", file=sys.stderr)
    if not problems:
        print(f"sbx_smoke: OK ({result['durationMs']} ms, backend {result['isolation']['backend']})", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
