"""The finding routes' query parameters: page cursors and instants.

A cursor is ``<created_at in µs since the epoch>-<the id's hex>`` of a page's last row. Clients
treat it as opaque (it is only ever handed back); its parameter schema is exact, so every
string the OpenAPI document allows decodes to a position and anything else is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import contracts
from api.errors import ApiError
from contracts import Violation
from pipelines.store.listing import Position

T = TypeVar("T")
PAGE = 50  # rows per page unless ``limit`` says otherwise (at most 200: contracts/params.schema.json)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN, _MAX = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
_MAX_MICROS = (_MAX - _EPOCH) // timedelta(microseconds=1)
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))")


def encode(created_at: datetime, ident: str) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{ident.split('_', 1)[1]}"


def decode(cursor: str, prefix: str) -> Position:
    """The position a cursor names; ``prefix``: its ids' (``run``, ``int``)."""
    pattern = contracts.schema("params")["properties"]["cursor"]["pattern"]
    match = re.fullmatch(pattern, cursor)
    if match is None:
        raise ApiError(400, "invalid_cursor", "cursor is not one this server handed out",
                       [Violation("/cursor", f"does not match {pattern}")])
    micros, hexid = cursor.split("-")
    # Past year 9999 (Python's last) is after every row: clamped, the page is the same.
    return Position(_EPOCH + timedelta(microseconds=min(int(micros), _MAX_MICROS)), f"{prefix}_{hexid}")


def instant(value: str) -> datetime:
    """An RFC 3339 date-time the params contract admitted, as an aware datetime. An offset can
    take it past the years Python's datetime holds (0001-01-01T00:00:00+01:00): it then clamps
    to the nearest one it can hold, which selects the same rows."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ApiError(400, "schema_violation", f"{value[:80]!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = int((match[7] or "0")[:6].ljust(6, "0"))
    offset = timedelta(hours=int(match[9] or 0), minutes=int(match[10] or 0)) * (-1 if match[8] == "-" else 1)
    try:
        return datetime(year, month, day, hour, minute, second, fraction, tzinfo=UTC) - offset
    except OverflowError:
        return _MIN if year == 1 else _MAX


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def next_cursor(rows: list[T], limit: int, position: Callable[[T], tuple[datetime, str]]) -> str | None:
    """Pages are read with limit + 1 rows: the extra one only says that another page exists."""
    if len(rows) <= limit:
        return None
    return encode(*position(rows[limit - 1]))
