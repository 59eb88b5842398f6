"""The intent and plan the OC unit tests share."""

from typing import Any

DEMO = {"goal": "demo", "inputs": {}, "constraints": {}, "connectors": []}
PLAN: dict[str, Any] = {
    "schemaVersion": "oc-output/1",
    "summary": "Say hello.",
    "files": [],
    "commands": [{"name": "hello", "run": "echo hello", "timeoutMs": 1000}],
}
