"""Reading stored artifacts (``app.artifacts``): what a run produced, by exact name, in slices.

A name is only ever a key among one run's rows, never part of a filesystem path. The bytes are
read with ``substring()`` a slice at a time, so a reader holds one slice in memory, not the
artifact (sql/0004 stores them uncompressed so a slice fetches only its own TOAST chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

# One slice per query: small enough to bound a reader's memory, large enough that a whole
# artifact (at most the sandbox's content cap, 256 KiB) takes a handful of queries.
SLICE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Artifact:
    name: str
    size: int
    sha256: str
    media_type: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "mediaType": self.media_type}


def media_type(name: str, content: bytes) -> str:
    """What the writer records: JSON by name, else UTF-8 text, else opaque bytes. Text is never
    labelled HTML or script, whatever its name: these bytes come from the sandbox."""
    if name.endswith(".json"):
        return "application/json"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


_COLUMNS = "name, size, sha256, media_type"


def listing(conn: psycopg.Connection, run_id: str) -> list[Artifact]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM app.artifacts WHERE run_id = %s ORDER BY name",
                        (run_id,)).fetchall()
    return [Artifact(r[0], int(r[1]), r[2], r[3]) for r in rows]


def find(conn: psycopg.Connection, run_id: str, name: str) -> Artifact | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM app.artifacts WHERE run_id = %s AND name = %s",
                       (run_id, name)).fetchone()
    return Artifact(row[0], int(row[1]), row[2], row[3]) if row else None


class Vanished(Exception):
    """The artifact's row went away (or changed) while it was being read."""


def read(connection: Callable[[], AbstractContextManager[psycopg.Connection]], run_id: str, artifact: Artifact,
         start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start`` … ``end`` (inclusive) of ``artifact``, slice by slice, each slice on a
    connection taken from ``connection()`` only for its query (a slow reader holds none between
    slices). The sha256 is part of the key, so every slice comes from the same bytes."""
    offset = start
    while offset <= end:
        length = min(SLICE_BYTES, end - offset + 1)
        with connection() as conn:
            row = conn.execute(
                "SELECT substring(content FROM %s FOR %s) FROM app.artifacts "
                "WHERE run_id = %s AND name = %s AND sha256 = %s",
                (offset + 1, length, run_id, artifact.name, artifact.sha256)).fetchone()
        if row is None or row[0] is None or len(row[0]) != length:
            raise Vanished(f"{run_id}/{artifact.name}")
        yield bytes(row[0])
        offset += length
