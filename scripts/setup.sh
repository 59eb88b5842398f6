#!/usr/bin/env bash
# Create the project venv (.venv) on the system Python from uv.lock, and install the one
# system package the sandbox needs. Never downloads a Python: uv uses the system interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
# Bytecode compiled at install: processes may run with PYTHONDONTWRITEBYTECODE, and dagster
# compiled from source on every start costs seconds per process.
UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never uv sync --frozen --python "$(command -v python3)" --quiet

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (the sandbox's default isolation)" >&2
    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bubblewrap; }) >&2
  else
    echo "setup: WARNING bubblewrap (bwrap) is missing: install it, or the sandbox refuses to run" >&2
  fi
fi
touch .venv/.synced
