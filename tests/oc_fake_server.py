"""A scripted chat-completions server on loopback: real HTTP, one scripted reply per request, every request kept.

Tests point the real ``openai`` client (through ``run_oc``) at it and count requests here, at the
server, rather than trusting the client's account of what it sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.oc.plan import response_format


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes -> sent as is
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    model: str = "fake-model-2025",
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage or {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


def ok(plan: dict[str, Any], **kwargs: Any) -> Reply:
    return Reply(body=completion(json.dumps(plan), **kwargs), headers={"x-request-id": "req_fake_1"})


class ChatServer:
    def __init__(self, replies: list[Reply], *, formats: list[dict[str, Any]] | None = None):
        """``formats``: the response_formats a request may carry (default: the openai dialect's)."""
        self.replies = list(replies)
        self.formats = formats if formats is not None else [response_format()]
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # Problems with what the client sent; a test asserts this is empty.
        self.problems: list[str] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._http.block_on_close = False
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def close(self) -> None:
        self._closing.set()  # wakes handlers sleeping out a scripted delay
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
            self.requests.append(request)
            self.headers.append(headers)
            if path != "/v1/chat/completions":
                self.problems.append(f"request {len(self.requests)} went to {path}")
            if not isinstance(request, dict) or request.get("response_format") not in self.formats:
                self.problems.append(f"request {len(self.requests)} lacks our response_format")
            if not self.replies:
                self.problems.append(f"request {len(self.requests)} came after the script ran out")
                return Reply(status=599, body={"error": {"message": "script exhausted"}})
            return self.replies.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                reply = server._take(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if reply.delay_s and server._closing.wait(reply.delay_s):
                    return
                body = reply.body
                data = (
                    body
                    if isinstance(body, bytes)
                    else (body if isinstance(body, str) else json.dumps(body)).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout case)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
