"""Fixtures for the hub area (loaded by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hub_server import FakeHub


@pytest.fixture
def hub_server(isolated_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fresh local fake Hub on 127.0.0.1; ``HF_ENDPOINT`` points at it for this test.

    The write token the Hub accepts is ``hub_server.token`` (not exported to HF_TOKEN:
    tests opt in with ``monkeypatch.setenv("HF_TOKEN", hub_server.token)``).
    """
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        yield hub
    finally:
        hub.stop()
