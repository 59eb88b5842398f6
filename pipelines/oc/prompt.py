"""The messages sent to a model: fixed instructions, then the intent as canonical JSON (nothing else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fixture_store import canonical_json
from .plan import SCHEMA_VERSION

if TYPE_CHECKING:  # openai is imported only where a provider is called (oc/config.py says why)
    from openai.types.chat import ChatCompletionMessageParam

# One worked example (a valid plan, checked by a unit test): a small model copies its shape, which
# turned SmolLM2-135M's plans from timestamps and shell comments into mostly `wc`-like commands.
EXAMPLE_INTENT = {"goal": "count the words in a sentence"}
EXAMPLE_PLAN = {
    "schemaVersion": SCHEMA_VERSION,
    "summary": "Write the text to a file, then count its words.",
    "files": [{"path": "text.txt", "content": "the quick brown fox"}],
    "commands": [{"name": "count-words", "run": "wc -w text.txt", "timeoutMs": 5000}],
}
SYSTEM = (
    "You are the planning step of a job runner. Turn the user's intent (a JSON object with goal, inputs, "
    "constraints and connectors) into a plan the sandbox will execute: the files to create in an empty "
    "work directory (relative paths), then POSIX shell commands run in order inside it, with no network "
    "access, each with a timeout in milliseconds. Prefer few, small, standard commands. "
    f'Answer only with the JSON plan; schemaVersion is "{SCHEMA_VERSION}". '
    f"Example: for the intent {canonical_json(EXAMPLE_INTENT)} a good plan is {canonical_json(EXAMPLE_PLAN)}"
)


def messages(intent: Any) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": canonical_json(intent)},
    ]
