"""The plan contract: strict-mode compatible, and what the provider is asked for is exactly it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import contracts
from pipelines.oc import validate_plan
from pipelines.oc.plan import response_format, wire_schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "oc-output"
# The keywords OpenAI's strict structured outputs accept (and annotations); nothing else may appear.
STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "const", "enum",
    "pattern", "minimum", "maximum", "minItems", "maxItems", "description", "title",
}  # fmt: skip


def walk_objects(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((where, node))
        for key, child in (node.get("properties") or {}).items():
            found += walk_objects(child, f"{where}/properties/{key}")
        if isinstance(node.get("items"), dict):
            found += walk_objects(node["items"], f"{where}/items")
    return found


def test_every_object_is_closed_and_requires_all_its_properties() -> None:
    objects = walk_objects(wire_schema())
    assert [where for where, _ in objects] == ["#", "#/properties/files/items", "#/properties/commands/items"]
    for where, obj in objects:
        assert obj["additionalProperties"] is False, where
        assert sorted(obj["required"]) == sorted(obj["properties"]), where


def test_only_strict_mode_keywords_are_used() -> None:
    def keywords(node: Any) -> set[str]:
        if not isinstance(node, dict):
            return set()
        found = set(node) - {"properties"}
        for child in (node.get("properties") or {}).values():
            found |= keywords(child)
        return found | keywords(node.get("items"))

    assert keywords(wire_schema()) <= STRICT_KEYWORDS


def test_response_format_carries_the_contract_minus_its_registry_ids() -> None:
    fmt = response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True and fmt["json_schema"]["name"] == "oc_plan"
    full = contracts.schema("oc-output")
    assert fmt["json_schema"]["schema"] == {k: v for k, v in full.items() if k not in ("$schema", "$id")}
    assert full["$id"] == "https://intent-harness.dev/contracts/oc-output.schema.json"


@pytest.mark.parametrize("path", sorted((FIXTURES / "good").glob("*.json")), ids=lambda p: p.stem)
def test_good_plans_validate(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert validate_plan(doc) is doc


@pytest.mark.parametrize("path", sorted((FIXTURES / "bad").glob("*.json")), ids=lambda p: p.stem)
def test_bad_plans_are_rejected(path: Path) -> None:
    with pytest.raises(contracts.ContractViolation):
        validate_plan(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("goal.txt", True),
        ("a/b-c/d_e.v1.txt", True),
        ("/etc/passwd", False),
        ("../x", False),
        ("a/../../x", False),
        ("./x", False),
        (".env", False),
        ("a//b", False),
        ("a/", False),
        ("a\\..\\x", False),
        ("", False),
        ("x" * 65, False),
        ("/".join(["d"] * 9), False),
    ],
)
def test_paths_stay_inside_the_work_dir(path: str, ok: bool) -> None:
    plan = {
        "schemaVersion": "oc-output/1",
        "summary": "s",
        "files": [{"path": path, "content": ""}],
        "commands": [{"name": "n", "run": "true", "timeoutMs": 100}],
    }
    assert (contracts.violations("oc-output", plan) == []) is ok


def test_violations_come_in_a_stable_order() -> None:
    doc = {
        "schemaVersion": "oc-output/9",
        "summary": " ",
        "files": [{"path": "../x", "content": 1}],
        "commands": [{"name": "Bad Name", "run": "ls", "timeoutMs": 1, "shell": "bash"}],
        "note": "x",
    }
    with pytest.raises(contracts.ContractViolation) as caught:
        validate_plan(doc)
    assert [v.pointer for v in caught.value.violations] == [
        "", "/commands/0", "/commands/0/name", "/commands/0/timeoutMs",
        "/files/0/content", "/files/0/path", "/schemaVersion", "/summary",
    ]  # fmt: skip
