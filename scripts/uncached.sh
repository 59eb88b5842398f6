#!/bin/sh
# Make the running mise task (MISE_TASK_NAME) always stale: its declared output, the stamp, gets an
# epoch mtime, so it is older than any source and mise never skips the task as up to date.
set -eu
mkdir -p .data/stamps
touch -d @0 ".data/stamps/${MISE_TASK_NAME:?run me from a mise task}"
