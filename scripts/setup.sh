#!/usr/bin/env bash
# Create the project venv (.venv) on the system Python from uv.lock, and install what the machine
# lacks. System-wide, only Debian packages through apt (as root): python3-venv when the system
# Python cannot make a venv, bubblewrap when the sandbox's bwrap is missing, g++ and cmake when
# missing (to build llama-cpp-python once), redis-server (the celery launcher's broker) when
# missing, chromium when the suite's browser check of the Dagster UI has no browser. Everything else stays
# in the checkout: uv (when not on PATH) in .venv-tools, the project's packages in .venv. Never
# installs into the system Python (PEP 668) and never downloads a Python.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TOOLS=.venv-tools
PYTHON=$(command -v python3)

# apt_install <package> <why>: install a Debian package as root; refresh the lists only if needed.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  echo "setup: installing $1 ($2)" >&2
  local install=(apt-get install -y -qq --no-install-recommends "$1")
  ("${install[@]}" >/dev/null 2>&1 || { apt-get update -qq && "${install[@]}"; }) >&2
}

# A private venv for uv: stock Debian's python3 has no pip, and its pip may not install into the
# system Python anyway. Debian ships venv's ensurepip separately, in python3-venv.
bootstrap_uv() {
  if ! "$PYTHON" -m venv --clear "$TOOLS" >/dev/null 2>&1; then
    apt_install python3-venv "the system Python's venv cannot install pip without it" || {
      echo "setup: ERROR \`$PYTHON -m venv\` fails: install Debian's python3-venv (as root) or put uv on PATH" >&2
      exit 1
    }
    "$PYTHON" -m venv --clear "$TOOLS"
  fi
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}

if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  UV=$TOOLS/bin/uv
  # Re-bootstrap when the pin moves, so the checkout never keeps an older uv than this file names.
  case "$("$UV" --version 2>/dev/null)" in
    "uv $UV_VERSION "*) ;;
    *) bootstrap_uv ;;
  esac
fi
# llama-cpp-python (the embedded model server) ships only as source on PyPI: uv builds it once with
# a C/C++ compiler and cmake, then reuses the wheel from its cache. Debian's, when missing.
for tool in g++ cmake; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt_install "$tool" "building llama-cpp-python (the embedded model server) once" ||
      echo "setup: WARNING $tool is missing: building llama-cpp-python will fail" >&2
  fi
done
# Bytecode compiled at install: processes may run with PYTHONDONTWRITEBYTECODE, and dagster
# compiled from source on every start costs seconds per process.
UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --python "$PYTHON" --quiet

if ! command -v bwrap >/dev/null 2>&1; then
  apt_install bubblewrap "the sandbox's default isolation" ||
    echo "setup: WARNING bubblewrap (bwrap) is missing: install it, or the sandbox refuses to run" >&2
fi
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server "the broker of HARNESS_RUN_LAUNCHER=celery and of the test suite" ||
    echo "setup: WARNING redis-server is missing: install it, or set BROKER_URL (the celery launcher and its tests need a broker)" >&2
fi
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium "the suite's headless-browser check of the Dagster UI" ||
    echo "setup: WARNING chromium is missing: install Debian's chromium, or the UI check (and the suite) fails" >&2
fi
touch .venv/.synced
