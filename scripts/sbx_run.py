"""Run one shell command in the sandbox with the default limits and print the result JSON.

    python -m scripts.sbx_run [--files DIR] [--allow-degraded] -- <shell command>

The work dir is fresh, optionally seeded with the text files under DIR (symlinks are not
followed). The exit code is the command's; 125 means the sandbox itself could not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipelines.sandbox import SandboxConfig, SandboxError, run_sandbox_job

SANDBOX_FAILED = 125


def seed_files(root: Path) -> list[dict[str, str]]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            try:
                files.append({"path": rel, "content": path.read_text(encoding="utf-8")})
            except UnicodeDecodeError:
                raise SystemExit(f"--files: {rel} is not UTF-8 text; jobs carry text files only") from None
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sbx_run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=Path, help="seed the work dir with the files under this folder")
    parser.add_argument("--allow-degraded", action="store_true", help="fall back to the process backend if bwrap is unavailable")
    parser.add_argument("--timeout-ms", type=int, default=30000)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the shell command")
    args = parser.parse_args(argv)
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not words:
        parser.error("missing the shell command (after --)")
    job = {"command": " ".join(words), "timeout_ms": args.timeout_ms}
    if args.files:
        job["files"] = seed_files(args.files)
    try:
        result = run_sandbox_job(job, config=SandboxConfig(allow_degraded=args.allow_degraded))
    except SandboxError as exc:
        print(f"sbx_run: sandbox failed: {exc}", file=sys.stderr)
        return SANDBOX_FAILED
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return int(result["exitCode"])


if __name__ == "__main__":
    sys.exit(main())
