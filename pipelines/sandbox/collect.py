"""Collect the files a run left in its work dir, without ever following a symlink.

The sandbox controls the work dir's contents, so the walk uses directory fds and
``O_NOFOLLOW`` throughout: a symlink (or fifo, socket, device) is reported as skipped
and never opened. Paths are relative, ``/``-separated and sorted by code point.
``size`` and ``sha256`` describe the bytes on disk; ``content`` is the UTF-8 text with
line endings normalised to ``\\n``. Text files become the run's stored artifacts, so one over the
content cap (the cap on a stored artifact) is an error, ``ArtifactTooLarge``; binary files are
listed without content and not stored.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.sandbox.config import CollectCaps
from pipelines.sandbox.errors import ArtifactTooLarge

_CHUNK = 1 << 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class Collected:
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    truncated: bool = False


def decode_text(data: bytes) -> str | None:
    """Normalised text, or None when the bytes are binary (NUL or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _walk(dir_fd: int, prefix: str, out: list[tuple[str, str]], budget: list[int]) -> bool:
    """Append (relative path, kind) for every entry; False once the entry budget ran out."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                out.append((rel, "symlink"))
            elif entry.is_dir(follow_symlinks=False):
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    if not _walk(sub, f"{rel}/", out, budget):
                        return False
                finally:
                    os.close(sub)
            elif entry.is_file(follow_symlinks=False):
                out.append((rel, "file"))
            else:
                out.append((rel, "special"))
    return True


def _read_file(root_fd: int, rel: str, max_bytes: int) -> tuple[os.stat_result, bytes] | None:
    """Open every path component with O_NOFOLLOW; None if anything turned out not to be a plain file."""
    *dirs, name = rel.split("/")
    fds: list[int] = []
    try:
        parent = root_fd
        for part in dirs:
            parent = os.open(part, _DIR_FLAGS, dir_fd=parent)
            fds.append(parent)
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        chunks = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return st, b"".join(chunks)
    except OSError:
        return None
    finally:
        for opened in reversed(fds):
            os.close(opened)


def _has_surrogates(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def collect_files(root: Path, caps: CollectCaps) -> Collected:
    result = Collected()
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        entries: list[tuple[str, str]] = []
        budget = [caps.max_entries]
        complete = _walk(root_fd, "", entries, budget)
        result.truncated = not complete
        remaining = caps.max_total_mb * 1024 * 1024
        for rel, kind in sorted(entries):
            if _has_surrogates(rel):
                result.skipped.append({"path": rel.encode("utf-8", "replace").decode("utf-8"), "reason": "name_not_utf8"})
                continue
            if kind != "file":
                result.skipped.append({"path": rel, "reason": kind})
                continue
            if len(result.files) >= caps.max_files:
                result.truncated = True
                break
            read = _read_file(root_fd, rel, remaining)
            if read is None:
                # Either over the total-size budget or changed under us; both end collection
                # deterministically rather than returning a partial, unordered picture.
                result.truncated = True
                break
            st, data = read
            remaining -= st.st_size
            entry: dict[str, Any] = {"path": rel, "size": st.st_size, "sha256": hashlib.sha256(data).hexdigest()}
            text = decode_text(data)
            if text is None:
                entry["omitted"] = "binary"
            elif st.st_size > caps.max_content_kb * 1024:
                raise ArtifactTooLarge(rel, st.st_size, caps.max_content_kb * 1024)
            else:
                entry["content"] = text
            result.files.append(entry)
    finally:
        os.close(root_fd)
    return result


def decode_output(data: bytes) -> str:
    """Undecodable bytes become U+FFFD, always the same way, so results are reproducible."""
    return data.decode("utf-8", errors="replace")
