"""The messages sent to a model: fixed instructions, then the intent as canonical JSON (nothing else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fixture_store import canonical_json
from .plan import SCHEMA_VERSION

if TYPE_CHECKING:  # openai is imported only where a provider is called (oc/config.py says why)
    from openai.types.chat import ChatCompletionMessageParam

SYSTEM = (
    "You are the planning step of a job runner. Turn the user's intent (a JSON object with goal, inputs, "
    "constraints and connectors) into a plan the sandbox will execute: the files to create in an empty "
    "work directory (relative paths), then POSIX shell commands run in order inside it, with no network "
    "access, each with a timeout in milliseconds. Prefer few, small, standard commands. "
    f'Answer only with the JSON plan; schemaVersion is "{SCHEMA_VERSION}".'
)


def messages(intent: Any) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": canonical_json(intent)},
    ]
