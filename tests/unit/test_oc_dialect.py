"""The provider dialects: the llama-cpp schema translation is a pure function that only narrows the
contract, except for the constraints it names as relaxed (which the validator still enforces)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from pipelines.oc import dialect
from pipelines.oc.plan import RESPONSE_FORMAT_NAME, response_format, validate_plan, wire_schema
from scripts.oc_reference_provider import plan_for
from tests.oc_samples import DEMO, PLAN


def _walk(node: Any, pointer: str = "") -> Any:
    if isinstance(node, dict):
        yield pointer, node
        for key in ("properties",):
            for name, sub in (node.get(key) or {}).items():
                yield from _walk(sub, f"{pointer}/{key}/{name}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{pointer}/items")


def test_the_translation_keeps_no_unanchored_pattern_and_caps_every_free_string_and_list() -> None:
    translated = dialect.llama_cpp_schema(wire_schema()).schema
    for pointer, node in _walk(translated):
        if "pattern" in node:
            assert node["pattern"].startswith("^") and node["pattern"].endswith("$"), pointer
        if node.get("type") == "string" and not {"const", "enum"} & node.keys():
            assert "pattern" in node, pointer
        if node.get("type") == "string" and node.get("pattern", "").startswith(f"^{dialect.PLAIN_CHAR}"):
            assert node["pattern"].endswith(f",{node['maxLength']}}}$") and node["maxLength"] <= dialect.STRING_CAP
        if node.get("type") == "integer":
            assert node["enum"] and all(100 <= v <= 300000 for v in node["enum"]), pointer
    props = translated["properties"]
    assert props["files"]["maxItems"] == 2 and props["commands"]["maxItems"] == 3
    assert props["commands"]["minItems"] == 1
    assert props["summary"]["minLength"] == 1 and props["summary"]["maxLength"] == 160
    assert props["summary"]["pattern"] == f"^{dialect.PLAIN_CHAR}{{1,160}}$"


def test_only_the_named_constraints_are_relaxed() -> None:
    """Every keyword the contract has and the translation lacks or loosens is listed as relaxed."""
    original = wire_schema()
    translation = dialect.llama_cpp_schema(original)
    relaxed = {(r.pointer, r.keyword) for r in translation.relaxed}
    assert relaxed == {("/properties/summary", "pattern"),
                       ("/properties/commands/items/properties/run", "pattern")}
    translated = dict(_walk(translation.schema))
    for pointer, node in _walk(original):
        for keyword, value in node.items():
            if keyword in ("properties", "items", "description"):
                continue
            kept = translated[pointer].get(keyword)
            if (pointer, keyword) in relaxed:
                assert kept != value  # dropped (a plain-character pattern may stand in its place)
            elif keyword in ("maxItems", "maxLength", "maximum"):
                assert kept is not None and kept <= value, (pointer, keyword)
            elif keyword in ("minItems", "minLength", "minimum"):
                assert kept is not None and kept >= value, (pointer, keyword)
            else:
                assert kept == value, (pointer, keyword)
    assert "/properties/summary/pattern='\\\\S'" in translation.describe()


def test_the_translation_is_pure() -> None:
    original = wire_schema()
    before = copy.deepcopy(original)
    first, second = dialect.llama_cpp_schema(original), dialect.llama_cpp_schema(original)
    assert original == before and first == second


def test_typical_plans_fit_the_translation_and_what_it_admits_the_contract_may_still_refuse() -> None:
    from pipelines.oc.prompt import EXAMPLE_PLAN

    translated = jsonschema.Draft202012Validator(dialect.llama_cpp_schema(wire_schema()).schema)
    for plan in (PLAN, EXAMPLE_PLAN):
        translated.validate(plan)
        validate_plan(plan)
    # Narrower than the contract: no escapes, so a file content with a newline is outside the grammar.
    reference = plan_for({**DEMO, "goal": "two\nlines"})
    validate_plan(reference)
    assert not translated.is_valid(reference)
    blank = {**PLAN, "summary": " "}  # a relaxed constraint: the grammar admits it, the contract does not
    translated.validate(blank)
    with pytest.raises(Exception, match="summary"):
        validate_plan(blank)


def test_integer_bounds_become_choices_inside_them_or_fail_loudly() -> None:
    schema = {"type": "object", "properties": {"t": {"type": "integer", "minimum": 2000, "maximum": 20000}}}
    assert dialect.llama_cpp_schema(schema).schema["properties"]["t"]["enum"] == [5000, 10000]
    with pytest.raises(ValueError, match="no value"):
        dialect.llama_cpp_schema({"type": "integer", "minimum": 1, "maximum": 2})


def test_response_formats_per_dialect() -> None:
    openai_form, none = dialect.response_format("openai", wire_schema(), RESPONSE_FORMAT_NAME)
    assert openai_form == response_format() and none is None
    llama_form, translation = dialect.response_format("llama-cpp", wire_schema(), RESPONSE_FORMAT_NAME)
    assert translation is not None
    assert llama_form == {"type": "json_object", "schema": translation.schema}
    with pytest.raises(ValueError, match="unknown dialect"):
        dialect.response_format("grammar", wire_schema(), RESPONSE_FORMAT_NAME)


def test_llama_cpp_pythons_refusal_of_json_schema_is_recognised() -> None:
    # What llama-cpp-python 0.3.36's server answered the openai form (measured; HTTP 500).
    body = ('{"error":{"message":"[{\'type\': \'literal_error\', \'loc\': (\'body\', \'response_format\', \'type\'), '
            '\'msg\': \\"Input should be \'text\' or \'json_object\'\\", \'input\': \'json_schema\'}]"}}')
    assert dialect.refuses_json_schema(500, body)
    assert not dialect.refuses_json_schema(500, '{"error": "out of memory"}')
    assert not dialect.refuses_json_schema(None, body)


def test_the_prompts_worked_example_is_a_valid_plan_that_fits_the_translation() -> None:
    from pipelines.oc import prompt

    validate_plan(prompt.EXAMPLE_PLAN)
    jsonschema.Draft202012Validator(dialect.llama_cpp_schema(wire_schema()).schema).validate(prompt.EXAMPLE_PLAN)
    assert prompt.canonical_json(prompt.EXAMPLE_PLAN) in prompt.SYSTEM
