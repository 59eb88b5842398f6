"""The replay key: sha256 of canonical JSON of {intent, schemaVersion, seed}."""

from __future__ import annotations

import hashlib

from pipelines.oc import SCHEMA_VERSION, canonical_json, fixture_key

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
# Pinned: the README, runbook and shipped fixture all depend on this exact key.
DEMO_KEY = "873b3ee1cc47c412d6e39707fcdbe9566b5baf8fcc195221cfdc9a0d72143a60"


def test_demo_key_is_pinned() -> None:
    assert fixture_key(DEMO, 0) == DEMO_KEY


def test_key_is_sha256_of_the_canonical_material() -> None:
    material = '{"intent":{"connectors":[],"constraints":{},"goal":"demo","inputs":{}},"schemaVersion":"oc-output/1","seed":0}'
    assert SCHEMA_VERSION == "oc-output/1"
    assert canonical_json({"intent": DEMO, "schemaVersion": SCHEMA_VERSION, "seed": 0}) == material
    assert fixture_key(DEMO, 0) == hashlib.sha256(material.encode()).hexdigest()


def test_key_ignores_dict_ordering_at_every_depth() -> None:
    a = {
        "goal": "g",
        "inputs": {"x": 1, "y": {"p": [1, 2], "q": None}},
        "constraints": {},
        "connectors": ["c"],
    }
    b = {
        "connectors": ["c"],
        "constraints": {},
        "inputs": {"y": {"q": None, "p": [1, 2]}, "x": 1},
        "goal": "g",
    }
    assert fixture_key(a, 1) == fixture_key(b, 1)


def test_key_changes_with_seed_schema_version_and_content() -> None:
    keys = {
        fixture_key(DEMO, 0),
        fixture_key(DEMO, 1),
        fixture_key(DEMO, 0, schema_version="oc-output/2"),
        fixture_key({**DEMO, "goal": "demo "}, 0),
        fixture_key({**DEMO, "connectors": ["a", "b"]}, 0),
        fixture_key({**DEMO, "connectors": ["b", "a"]}, 0),  # list order is meaning, not noise
    }
    assert len(keys) == 6


def test_canonical_json_keeps_unicode_and_is_compact() -> None:
    assert canonical_json({"b": "é☃", "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":"é☃"}'
