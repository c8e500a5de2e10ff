"""Property-based run over the app's own OpenAPI schema: no input may produce a 5xx.

Real uvicorn and real MLX batching with the stand-in text engine (fast, bounded examples).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
from tests.support.fixtures_server import ThreadedServer, serve_app_in_thread

from mlxk.server.app import create_app
from mlxk.server.pool import ModelPool
from mlxk.server.settings import ServerSettings


def _start() -> ThreadedServer:
    s = ServerSettings(keep_alive=-1, max_batch=8, max_queue=64, model=None)
    pool = ModelPool(s, resolver=fake_resolver, loader=load_fake, prepare=fake_prepare)
    pool.default_model = "fake/tiny-a"  # requests without "model" really generate
    return serve_app_in_thread(create_app(s, pool))


_server = _start()
schema = schemathesis.openapi.from_dict(
    __import__("httpx").get(_server.base_url + "/openapi.json").json())


@pytest.fixture(scope="module", autouse=True)
def _stop_server() -> Iterator[None]:
    yield
    _server.stop()


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(base_url=_server.base_url, timeout=60)
    case.validate_response(response, checks=(not_a_server_error,))
