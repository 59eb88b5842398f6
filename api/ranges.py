"""Conditional and partial GETs of stored bytes (RFC 9110 §13.1.2, §13.1.5, §14.2): the pure parts.

Only a single byte range is served; a Range header this server does not understand (another
unit, several ranges, bad syntax) is ignored and the whole representation sent, as the RFC allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*(?:,|$)')
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # inclusive


class Unsatisfiable(Exception):
    """No byte of the representation is in the range (answered 416 with ``bytes */size``)."""


def etag(sha256: str) -> str:
    """A strong validator: the bytes' sha256 changes with every byte."""
    return f'"{sha256}"'


def none_match(header: str, sha256: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches any
    existing representation."""
    if header.strip() == "*":
        return True
    return sha256 in _TAG.findall(header)


def if_range_holds(header: str | None, sha256: str) -> bool:
    """If-Range uses the strong comparison, and a date never matches (no Last-Modified is sent)."""
    return header is None or header.strip() == etag(sha256)


def requested(header: str, size: int) -> Span | None:
    """The one range asked for, clipped to ``size``; None to send everything.

    Raises Unsatisfiable for a valid range that starts past the end (or any range of 0 bytes)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    first, last = match[1], match[2]
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return Span(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid syntax, ignored
    if start >= size:
        raise Unsatisfiable
    return Span(start, min(int(last), size - 1) if last else size - 1)
