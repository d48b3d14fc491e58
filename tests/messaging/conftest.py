"""Local stand-ins for the providers' APIs (127.0.0.1 only) and a message factory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from pytest_httpserver import HTTPServer

from adapters.messaging.templates import TemplateCatalogue, default_catalogue
from application.ports import OutboundCode

CODE = "493817"


class FakeMonotonic:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(scope="session")
def _api_session() -> Iterator[HTTPServer]:
    yield from _server()


@pytest.fixture(scope="session")
def _api2_session() -> Iterator[HTTPServer]:
    yield from _server()


@pytest.fixture
def api(_api_session: HTTPServer) -> Iterator[HTTPServer]:
    """A provider's API on 127.0.0.1; each test sets the answers it needs."""
    _api_session.clear()
    yield _api_session
    _api_session.clear()


@pytest.fixture
def api2(_api2_session: HTTPServer) -> Iterator[HTTPServer]:
    """A second provider's API."""
    _api2_session.clear()
    yield _api2_session
    _api2_session.clear()


@pytest.fixture(scope="session")
def catalogue() -> TemplateCatalogue:
    return default_catalogue()


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


def message(**changes: Any) -> OutboundCode:
    base = OutboundCode(
        message_id="msg-1",
        channel="sms",
        to="+447400123456",
        code=CODE,
        locale="en",
        issuer="Acme",
        ttl_minutes=10,
        region="GB",
        carrier="Three",
    )
    return replace(base, **changes)


def wait_for_requests(server: HTTPServer, count: int, timeout: float = 5.0) -> None:
    """Wait until `server` has logged `count` requests: a handler still sleeping when its test
    ends would otherwise log its request into the next test's (shared) server."""
    deadline = time.monotonic() + timeout
    while len(server.log) < count:
        assert time.monotonic() < deadline, f"{len(server.log)} of {count} requests logged"
        time.sleep(0.01)
