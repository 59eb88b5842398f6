"""An OTLP/HTTP trace receiver on loopback: what the tests and ``bench:intent`` export spans to.

    with Receiver() as receiver:       # binds 127.0.0.1 on an ephemeral port
        env = receiver.env()           # OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port>
        ...
        receiver.spans                 # every span received, decoded

Decodes ``POST /v1/traces`` bodies (``application/x-protobuf``, gzip or not) with the official
OTLP protobuf package and keeps each span flat; answers ``/v1/metrics`` and ``/v1/logs`` with an
empty success so an exporter of those never retries. Not a collector: nothing is forwarded.

    python -m scripts.otlp_receiver [--port N]   # prints a line per span (for a look by hand)
"""

from __future__ import annotations

import argparse
import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# ``Span.SpanKind`` numbers of the OTLP protocol.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace id, span id)
    status: str
    start_ns: int
    end_ns: int


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self._http.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The standard variables that point an exporter here."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint}

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded = []
        for resource_spans in request.resource_spans:
            service = next((_value(a.value) for a in resource_spans.resource.attributes if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    decoded.append(Span(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex() or None, name=s.name, kind=KINDS.get(s.kind, "?"),
                        service=str(service), attributes={a.key: _value(a.value) for a in s.attributes},
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                        status=STATUS.get(s.status.code, "?"), start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano))
        with self._lock:
            self.requests += 1
            self.spans.extend(decoded)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = (self.headers.get("content-encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    if self.path == "/v1/traces":
                        receiver._take(body)
                except Exception as exc:  # a body we cannot read: the exporter is told, the test sees it
                    with receiver._lock:
                        receiver.errors.append(f"{self.path}: {exc!r}")
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts.otlp_receiver")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    receiver = Receiver(port=args.port)
    print(f"OTLP/HTTP receiver on {receiver.endpoint} (Ctrl-C to stop)", flush=True)
    seen = 0
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            spans = receiver.snapshot()
            for s in spans[seen:]:
                print(f"{s.trace_id} {s.span_id} <- {s.parent_span_id or '-':16} {s.service:28} {s.name}", flush=True)
            seen = len(spans)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
