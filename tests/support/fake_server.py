"""A real uvicorn server over the stand-in text engine (tests/support/fake_engine.py), and the
request helpers the fake-engine server tests share."""

from __future__ import annotations

import json

import httpx

from mlxk.server.app import create_app
from mlxk.server.pool import ModelPool
from mlxk.server.settings import ServerSettings
from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
from tests.support.fixtures_server import ThreadedServer, serve_app_in_thread

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "fake/tiny-a"


def make_server(**overrides: object) -> tuple[ThreadedServer, ModelPool]:
    settings = ServerSettings(**{"api_key": KEY, "keep_alive": -1, "max_batch": 4, "max_queue": 4,
                                 "max_body_bytes": 64 * 1024, **overrides})  # type: ignore[arg-type]
    pool = ModelPool(settings, resolver=fake_resolver, loader=load_fake, prepare=fake_prepare)
    return serve_app_in_thread(create_app(settings, pool)), pool


def chat_body(**kw: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 8, "temperature": 0, **kw}


def sse_events(text: str) -> list:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def assert_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    return err
