"""Property-based run over the app's own OpenAPI schema: no input may produce a 5xx, and input
the schema calls valid must not be rejected (the schema is exactly as strict as the server).

The schema is read from the app object (no server starts at import time); the requests go to a
real uvicorn with real MLX batching and the stand-in text engine (fast, bounded examples).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
from tests.support.fixtures_server import ThreadedServer, serve_app_in_thread

from mlxk.server.app import create_app
from mlxk.server.pool import ModelPool
from mlxk.server.settings import ServerSettings


def _app():  # type: ignore[no-untyped-def]
    s = ServerSettings(keep_alive=-1, max_batch=8, max_queue=64, model=None)
    pool = ModelPool(s, resolver=fake_resolver, loader=load_fake, prepare=fake_prepare)
    pool.default_model = "fake/tiny-a"  # requests without "model" really generate
    return create_app(s, pool)


# Building the app and its OpenAPI document starts nothing (no socket, no thread, no model).
schema = schemathesis.openapi.from_dict(_app().openapi())


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    srv = serve_app_in_thread(_app())
    yield srv
    srv.stop()


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_valid_input_is_accepted(case: schemathesis.Case,
                                                      server: ThreadedServer) -> None:
    response = case.call(base_url=server.base_url, timeout=60)
    checks = [not_a_server_error]
    if case.operation.path in STRICT_PATHS and not _semantic_refusal(response):
        # positive_data_acceptance: a request the schema calls valid may be refused only for what
        # a schema cannot know (404: no such model; 503: busy), never with a 400.
        checks.append(positive_data_acceptance)
    case.validate_response(response, checks=checks)


# The OpenAI routes' schemas are exactly as strict as the server. The other dialects
# (/v1/messages, /v1/responses, /api/*) are held to "no 5xx" only, until their request
# models carry their refusals too.
STRICT_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                "/v1/models/{model_id}")


# Fields whose content is itself a program the server must understand (a tool's JSON schema, a
# response_format schema, a conversation's order of roles) or that depend on the model (token ids
# in logit_bias must be in its vocabulary). No OpenAPI schema can say which of those are valid,
# so a 400 naming one of them is not a disagreement of schema and server.
SEMANTIC_PARAMS = ("tools", "tool_choice", "response_format", "messages", "logit_bias")

# Rules between fields or on the server's own settings, which an OpenAPI 3.0 schema cannot state:
# stream_options only with stream: true, top_logprobs only with logprobs: true, n at most
# --max-batch + --max-queue.
CROSS_FIELD_PARAMS = ("stream_options", "top_logprobs", "n")


def _semantic_refusal(response) -> bool:  # type: ignore[no-untyped-def]
    if response.status_code != 400:
        return False
    try:
        param = response.json()["error"].get("param") or ""
        code = response.json()["error"].get("code")
    except (ValueError, KeyError, AttributeError):
        return False
    if code == "context_length_exceeded":   # the model's context length is not the schema's
        return True
    if param.split(".")[0].split("[")[0] in SEMANTIC_PARAMS + CROSS_FIELD_PARAMS:
        return True
    # A string no cache could hold as a model name ("..", "--", over 96 characters) is refused
    # by the name rules of the contract (section 3), which the schema does not repeat.
    message = response.json()["error"].get("message") or ""
    # Token ids beyond the model's vocabulary: the vocabulary size is the model's, not the schema's.
    return message.startswith(("Model name", "Invalid model name")) or "outside the vocabulary" in message


def test_the_schema_is_read_without_a_server() -> None:
    import sys

    module = sys.modules[__name__]
    assert not any(isinstance(v, ThreadedServer) for v in vars(module).values())
