"""The ps/load/stop client: where it looks for the server, and how failures read."""

from __future__ import annotations

import socket

import pytest

from mlxk.errors import ServerError, ServerUnreachable, ValidationError
from mlxk.operations import lifecycle


def test_server_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lifecycle.server_url(None) == "http://127.0.0.1:8000"
    monkeypatch.setenv("MLXK_SERVER", "http://10.0.0.5:9000/")
    assert lifecycle.server_url(None) == "http://10.0.0.5:9000"
    assert lifecycle.server_url("localhost:8001") == "http://localhost:8001"
    with pytest.raises(ValidationError):
        lifecycle.server_url("ftp://x")


def test_a_server_that_never_answers_is_a_timeout_not_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ServerError) as info:
            lifecycle._call("GET", url, "/mlxk/ps", None, timeout=0.3)
    assert info.value.code == "timeout" and url in info.value.message


def test_stop_needs_a_model_or_all() -> None:
    with pytest.raises(ValidationError):
        lifecycle.stop_models(None)
    with pytest.raises(ValidationError):
        lifecycle.stop_models("m", all_models=True)


def test_nothing_listening_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerUnreachable) as info:
        lifecycle.list_loaded(f"http://127.0.0.1:{port}")
    assert info.value.extra["url"] == f"http://127.0.0.1:{port}"
