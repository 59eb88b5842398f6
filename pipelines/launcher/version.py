"""Which code a process serves: a hash of the ``pipelines/`` sources plus the dagster version.

The pool computes it once before importing the definitions and again on every launch; a
difference means the code on disk moved on (a deploy) and the forked worker would run stale
code, so the pool restarts instead. Hashing all 40-odd files takes about 1 ms.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dagster.version import __version__ as DAGSTER_VERSION

from pipelines.settings import REPO_ROOT

SOURCE_ROOT = REPO_ROOT / "pipelines"


def code_version(root: Path = SOURCE_ROOT) -> str:
    digest = hashlib.sha256(f"dagster {DAGSTER_VERSION}\n".encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
