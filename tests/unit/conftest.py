"""Unit-test determinism: no network but loopback, seeded randomness, a frozen clock."""

from __future__ import annotations

import ipaddress
import random
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from pipelines import clock

FROZEN_NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SEED = 1234


class NetworkDenied(RuntimeError):
    pass


def _loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real):
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise NetworkDenied(f"unit tests may only reach loopback, not {address!r}")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _deny_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))


@pytest.fixture(autouse=True)
def _seeded_random() -> None:
    random.seed(SEED)


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: FROZEN_NOW)
