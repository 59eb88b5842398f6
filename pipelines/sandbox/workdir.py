"""A fresh work dir per run, owned by the run's uid and seeded with the job's input files."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from pipelines.sandbox.errors import SandboxError


def checked_relpath(path: str) -> PurePosixPath:
    """The contract already restricts paths; this is the last line before touching disk."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in path.split("/")):
        raise SandboxError(f"input file path must be relative without '.' or '..' segments: {path!r}")
    return p


@contextlib.contextmanager
def prepared(work_root: str | None, uid: int, files: Sequence[dict[str, str]]) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="sbx-", dir=work_root))
    try:
        os.chown(root, uid, uid)
        for spec in files:
            rel = checked_relpath(spec["path"])
            target = root
            for part in rel.parts[:-1]:
                target = target / part
                if not target.is_dir():
                    try:
                        target.mkdir(mode=0o755)
                    except OSError as exc:
                        raise SandboxError(f"cannot create input dir for {spec['path']!r}: {exc.strerror}") from exc
                    os.chown(target, uid, uid)
            try:
                fd = os.open(target / rel.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise SandboxError(f"cannot create input file {spec['path']!r}: {exc.strerror}") from exc
            with os.fdopen(fd, "wb") as fh:
                fh.write(spec["content"].encode("utf-8"))
            os.chown(target / rel.name, uid, uid)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
