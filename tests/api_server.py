"""The real API under uvicorn, in-process, on a loopback port: for tests that speak HTTP to it.

The app state is built the production way (``build_state``) against the test databases, with
Dagster's webserver and code server pointed at ports nobody listens on: launches then stay in the
outbox (the API still answers 202) and ``/healthz`` reports the code location as not serving.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.deps import AppState
from api.main import build_state, create_app
from pipelines.settings import load

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now (for services that must be "down")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def harness_state(app_url: str, dagster_url: str, *, api_token: str | None = None) -> AppState:
    """``build_state`` with the database URLs and Dagster ports taken from the environment, as in
    production; the environment is restored afterwards (the state keeps what it read)."""
    overrides = {"APP_DATABASE_URL": app_url, "DAGSTER_DATABASE_URL": dagster_url,
                 "DAGSTER_PORT": str(free_port()), "DAGSTER_GRPC_PORT": str(free_port())}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        settings = dataclasses.replace(load(), api_token=api_token)
        return build_state(settings)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ServedApp:
    """``create_app(state)`` under uvicorn on a background thread, bound before it starts."""

    def __init__(self, state: AppState):
        self.state = state
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(state)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"api-{self.port}", daemon=True)

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {START_TIMEOUT_S}s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()
        if self._thread.is_alive():
            raise TimeoutError(f"uvicorn on port {self.port} did not stop")


@contextmanager
def serve(state: AppState) -> Iterator[ServedApp]:
    served = ServedApp(state).start()
    try:
        yield served
    finally:
        served.stop()
