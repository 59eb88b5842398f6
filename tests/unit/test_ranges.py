"""The pure parts of conditional and partial GETs (api/ranges.py), case by case from RFC 9110."""

from __future__ import annotations

import pytest

from api.ranges import Span, Unsatisfiable, if_range_holds, none_match, requested

SHA = "ab" * 32


@pytest.mark.parametrize(("header", "size", "span"), [
    ("bytes=0-0", 10, Span(0, 0)),
    ("bytes=2-", 10, Span(2, 9)),
    ("bytes=2-100", 10, Span(2, 9)),
    ("bytes=-3", 10, Span(7, 9)),
    ("bytes=-30", 10, Span(0, 9)),
    ("BYTES=1-2", 10, Span(1, 2)),
    (" bytes=1-2 ", 10, Span(1, 2)),
])
def test_one_satisfiable_range(header: str, size: int, span: Span) -> None:
    assert requested(header, size) == span


@pytest.mark.parametrize("header", ["bytes=5-1", "bytes=-", "bytes=", "items=0-1", "bytes=0-1,3-4", "bytes=a-b",
                                    "bytes=0x1-2", "bytes=1 -2", ""])
def test_a_range_not_understood_is_ignored(header: str) -> None:
    assert requested(header, 10) is None


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10),
                                              ("bytes=0-", 0), ("bytes=-1", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        requested(header, size)


@pytest.mark.parametrize(("header", "matches"), [
    (f'"{SHA}"', True), (f'W/"{SHA}"', True), (f'"x", "{SHA}"', True), ("*", True), (" * ", True),
    ('"x"', False), (SHA, False), ("", False), (f'"{SHA[:-1]}"', False),
])
def test_if_none_match_is_a_weak_comparison(header: str, matches: bool) -> None:
    assert none_match(header, SHA) is matches


@pytest.mark.parametrize(("header", "holds"), [
    (None, True), (f'"{SHA}"', True), (f'W/"{SHA}"', False), ('"x"', False), ("Tue, 01 Dec 2026 00:00:00 GMT", False),
])
def test_if_range_is_a_strong_comparison(header: str | None, holds: bool) -> None:
    assert if_range_holds(header, SHA) is holds
