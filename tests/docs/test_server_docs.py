"""docs/server.md lists exactly the server's routes and Prometheus metrics (read from the source)."""

from __future__ import annotations

import re

from tests.support.markdown import REPO_ROOT

SERVER_SRC = REPO_ROOT / "src" / "mlxk" / "server"
HANDBOOK = (REPO_ROOT / "docs" / "server.md").read_text()
_ROUTE = re.compile(r"@router\.(get|post|put|patch|delete)\(\s*\"([^\"]+)\"")
_METRIC = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(mlxk_[a-z_]+)\"")


def _section(title: str) -> str:
    return HANDBOOK.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_every_route_is_in_the_endpoint_table() -> None:
    routes = {(m.group(1).upper(), re.sub(r"\{[^}]*\}", "{}", m.group(2)))
              for path in SERVER_SRC.glob("*.py") for m in _ROUTE.finditer(path.read_text())}
    assert ("POST", "/v1/chat/completions") in routes
    table = _section("Endpoints")
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`", table))
    documented = {(verb, re.sub(r"\{[^}]*\}", "{}", p)) for verb, p in documented}
    missing = sorted(routes - documented)
    assert missing == [], "add these routes to the Endpoints table of docs/server.md"
    page = {("GET", p) for p in ("/", "/chat", "/ui/{}")}  # the chat page (server/ui.py, not a router)
    assert page <= documented, "the chat page's paths belong in the Endpoints table"
    extra = sorted((v, p) for v, p in documented - routes - page if p not in ("/openapi.json", "/docs"))
    assert extra == [], "docs/server.md lists routes the server does not have"


def test_every_metric_is_in_the_metrics_table() -> None:
    metrics = set()
    for m in _METRIC.finditer((SERVER_SRC / "metrics.py").read_text()):
        kind, name = m.groups()
        metrics.add(f"{name}_total" if kind == "Counter" else name)
    assert metrics
    documented = set(re.findall(r"`(mlxk_[a-z_]+)`", _section("Metrics")))
    assert metrics == documented


def test_every_openai_request_field_is_in_the_field_table() -> None:
    from mlxk.server.schemas import ChatCompletionRequest, CompletionRequest

    fields = set(ChatCompletionRequest.model_fields) | set(CompletionRequest.model_fields)
    table = _section("Chat and text completions: request fields")
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {name.split(".")[0] for cell in first_cells for name in re.findall(r"`([a-z_.]+)", cell)}
    assert sorted(fields - documented) == [], "document these request fields in docs/server.md"
    assert sorted(documented - fields) == [], "docs/server.md documents fields the server does not take"
