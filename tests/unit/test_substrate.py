import random
import socket

import pytest

from pipelines import clock
from tests.unit.conftest import FROZEN_NOW


def test_non_loopback_network_is_denied() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(RuntimeError, match="may only reach loopback"):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_clock_is_frozen() -> None:
    assert clock.now() == FROZEN_NOW


def test_randomness_is_seeded() -> None:
    first = random.random()
    random.seed(1234)
    assert random.random() == first
