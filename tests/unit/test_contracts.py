"""Every contract is a valid 2020-12 schema with a unique $id, and has good and bad fixtures."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import contracts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "contracts"


def _cases(kind: str) -> list[tuple[str, Path]]:
    return [(name, path) for name in contracts.names() for path in sorted((FIXTURES / name / kind).glob("*.json"))]


@pytest.mark.parametrize("name", contracts.names())
def test_schema_is_valid_2020_12_with_id(name: str) -> None:
    schema = contracts.schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}.schema.json")


def test_ids_are_unique() -> None:
    ids = [contracts.schema(n)["$id"] for n in contracts.names()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", contracts.names())
def test_every_contract_has_good_and_bad_fixtures(name: str) -> None:
    assert list((FIXTURES / name / "good").glob("*.json")), f"no good fixtures for {name}"
    assert list((FIXTURES / name / "bad").glob("*.json")), f"no bad fixtures for {name}"


@pytest.mark.parametrize(("name", "path"), _cases("good"), ids=lambda v: getattr(v, "name", v))
def test_good_fixture_validates(name: str, path: Path) -> None:
    contracts.validate(name, json.loads(path.read_text()))


@pytest.mark.parametrize(("name", "path"), _cases("bad"), ids=lambda v: getattr(v, "name", v))
def test_bad_fixture_is_rejected_with_pointer(name: str, path: Path) -> None:
    with pytest.raises(contracts.ContractViolation) as info:
        contracts.validate(name, json.loads(path.read_text()))
    assert info.value.violations
    again = contracts.violations(name, json.loads(path.read_text()))
    assert again == info.value.violations  # stable order: byte-identical error bodies


def test_unknown_contract_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known"):
        contracts.schema("no-such-contract")


def test_date_time_format_is_checked() -> None:
    # Format checking needs rfc3339-validator installed; without it jsonschema passes any string.
    found = contracts.violations("run-view", {"createdAt": "yesterday"})
    assert any(v.pointer == "/createdAt" and "date-time" in v.message for v in found)
