"""Reference planner — rule-based, not a language model — served over the chat-completions protocol.

No model is reachable from this project's machines, yet record mode, the shipped replay fixtures and
the demo need a real HTTP provider. This one answers any intent with the same small plan: write the goal
(and the inputs, if any) to files, then count and hash them. It reports itself as the model
``reference-planner-rule-based-not-an-llm`` and reports no token usage, because it has none.

    .venv/bin/python -m scripts.oc_reference_provider [--port 8089]
    OC_BASE_URL=http://127.0.0.1:8089/v1 OC_MODEL=reference-planner-rule-based-not-an-llm ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.oc import SCHEMA_VERSION, canonical_json
from pipelines.oc.plan import RESPONSE_FORMAT_NAME

MODEL = "reference-planner-rule-based-not-an-llm"
COMMAND_TIMEOUT_MS = 5000


def plan_for(intent: dict[str, Any]) -> dict[str, Any]:
    files = [{"path": "goal.txt", "content": f"{intent.get('goal', '')}\n"}]
    commands = [
        {"name": "count-goal-bytes", "run": "wc -c goal.txt", "timeoutMs": COMMAND_TIMEOUT_MS},
        {"name": "hash-goal", "run": "sha256sum goal.txt", "timeoutMs": COMMAND_TIMEOUT_MS},
    ]
    if intent.get("inputs"):
        files.append({"path": "inputs.json", "content": canonical_json(intent["inputs"]) + "\n"})
        commands.append(
            {"name": "hash-inputs", "run": "sha256sum inputs.json", "timeoutMs": COMMAND_TIMEOUT_MS}
        )
    return {
        "schemaVersion": SCHEMA_VERSION,
        "summary": "Reference plan (rule-based, not a language model): write the intent's goal"
        + (" and inputs" if intent.get("inputs") else "")
        + " to files, then count and hash them.",
        "files": files,
        "commands": commands,
    }


def completion_for(request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion whose id is derived from the request, so the same request gets the same answer."""
    intent = json.loads(request["messages"][-1]["content"])
    digest = hashlib.sha256(canonical_json(request).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-ref-{digest}",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": canonical_json(plan_for(intent)),
                    "refusal": None,
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }


def _request_problem(request: Any) -> str | None:
    if (
        not isinstance(request, dict)
        or not isinstance(request.get("messages"), list)
        or not request["messages"]
    ):
        return "expected a JSON object with a non-empty messages list"
    fmt = request.get("response_format") or {}
    if fmt.get("type") != "json_schema" or fmt.get("json_schema", {}).get("name") != RESPONSE_FORMAT_NAME:
        return (
            f"expected response_format json_schema {RESPONSE_FORMAT_NAME!r}; this planner only writes plans"
        )
    try:
        intent = json.loads(request["messages"][-1]["content"])
    except (TypeError, KeyError, ValueError):
        return "expected the last message to be the intent as JSON"
    return None if isinstance(intent, dict) else "expected the intent to be a JSON object"


class _Handler(BaseHTTPRequestHandler):
    server_version = "oc-reference-planner/1"

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(
                HTTPStatus.NOT_FOUND, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            )
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        except ValueError:
            request = None
        problem = _request_problem(request)
        if problem:
            self._send(
                HTTPStatus.BAD_REQUEST, {"error": {"message": problem, "type": "invalid_request_error"}}
            )
            return
        completion = completion_for(request)
        self._send(HTTPStatus.OK, completion, request_id=completion["id"].removeprefix("chatcmpl-"))

    def _send(self, status: HTTPStatus, body: dict[str, Any], request_id: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if request_id:
            self.send_header("x-request-id", request_id)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the refresh and smoke output


def start(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve on loopback in a daemon thread; returns the server and its OpenAI-style base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, name="oc-reference-planner", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8089)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    print(
        f"reference planner (rule-based, not a language model) on http://127.0.0.1:{port}/v1, model {MODEL}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
