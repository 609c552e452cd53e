"""Suite-wide settings and fixtures.

* hypothesis runs derandomised, so every CI run tests the same examples;
* ``no_network``: a fixture that blocks every network access (loaders of bundled data must
  not download).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("scarce", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("scarce")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Block every network access: connecting, resolving names, opening connections."""

    def _blocked(*args: object, **kwargs: object) -> None:
        raise RuntimeError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)
    yield
