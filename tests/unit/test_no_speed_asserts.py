"""No test asserts that something took less than a bound: on a busy shared machine such a test
fails for no fault of the code, and it proves nothing about speed (the bench/ tasks measure that).
A deadline belongs in a poll or a join, as a generous guard on behaviour.

What this catches: an ``assert`` comparing a clock difference — ``time.monotonic()``,
``time.perf_counter()`` or ``time.time()`` (also their ``_ns`` forms, imported or not) minus
something, written inline or through a local name assigned from one — with ``<``/``<=`` (or
``>``/``>=`` the other way round). What it does not: timing hidden in a helper, a poll deadline
that is too tight, or durations read from results (``durationMs``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns"}


def _is_clock(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr in CLOCKS and isinstance(func.value, ast.Name) and func.value.id == "time"
    return isinstance(func, ast.Name) and func.id in CLOCKS - {"time"}


def _reads_clock(node: ast.AST) -> bool:
    return any(_is_clock(n) for n in ast.walk(node))


def speed_asserts(source: str) -> list[int]:
    """Line numbers of asserts that an elapsed time is below a bound."""
    tree = ast.parse(source)
    elapsed_names = {
        target.id
        for node in ast.walk(tree) if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.Sub) and _reads_clock(node.value)
        for target in node.targets if isinstance(target, ast.Name)
    }

    def elapsed(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in elapsed_names
        return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _reads_clock(node)

    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            operands = [cmp.left, *cmp.comparators]
            for i, operand in enumerate(operands):
                below = i < len(cmp.ops) and isinstance(cmp.ops[i], ast.Lt | ast.LtE)
                above = i > 0 and isinstance(cmp.ops[i - 1], ast.Gt | ast.GtE)
                if elapsed(operand) and (below or above):
                    lines.append(node.lineno)
    return sorted(set(lines))


@pytest.mark.parametrize("source", [
    "t0 = time.monotonic()\nwork()\nassert time.monotonic() - t0 < 0.1\n",
    "started = time.perf_counter()\nassert 0.9 <= time.perf_counter() - started < 4\n",
    "t0 = time.monotonic()\nwork()\nstuck_s = time.monotonic() - t0\nassert stuck_s <= 3.0\n",
    "t0 = monotonic()\nassert 10 > monotonic() - t0, 'too slow'\n",
])
def test_catches_an_elapsed_time_below_a_bound(source: str) -> None:
    assert speed_asserts(source), source


@pytest.mark.parametrize("source", [
    "deadline = time.monotonic() + 5\nwhile time.monotonic() < deadline:\n    pass\n",
    "t0 = time.monotonic()\nwork()\nprint(f'{time.monotonic() - t0:.1f}s')\n",
    "t0 = time.monotonic()\nassert time.monotonic() - t0 >= 0.5  # waited at least the back-off\n",
    "assert result['durationMs'] < 100\n",
])
def test_leaves_deadlines_and_reports_alone(source: str) -> None:
    assert speed_asserts(source) == [], source


def test_no_test_asserts_a_speed() -> None:
    found = [f"{path.relative_to(TESTS.parent)}:{line}"
             for path in sorted(TESTS.rglob("*.py")) for line in speed_asserts(path.read_text())]
    assert found == [], "assert behaviour; put a deadline in a poll, and the figure in a bench: " + ", ".join(found)
