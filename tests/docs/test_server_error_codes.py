"""docs/server.md's Errors table names every `code` the server can send."""

from __future__ import annotations

import re

from tests.support.markdown import REPO_ROOT

SERVER_SRC = REPO_ROOT / "src" / "mlxk" / "server"
HANDBOOK = (REPO_ROOT / "docs" / "server.md").read_text()
_LITERAL = re.compile(r"""code=["']([A-Za-z_]+)["']|["']code["']:\s*["']([A-Za-z_]+)["']""")


def _errors_table() -> set[str]:
    section = HANDBOOK.split("## Errors", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([A-Za-z_]+)` \|", section, re.M)}


def test_every_server_error_code_is_in_the_table() -> None:
    from mlxk import errors

    documented = _errors_table()
    literals = {a or b for path in SERVER_SRC.rglob("*.py") for a, b in _LITERAL.findall(path.read_text())}
    http_line = next(line for line in (SERVER_SRC / "errors.py").read_text().splitlines()
                     if line.strip().startswith("code = {404:"))
    handler_codes = set(re.findall(r'\d{3}: "([a-z_]+)"', http_line))
    raised = {cls.code for cls in (errors.ValidationError, errors.ModelNotFound, errors.AmbiguousMatch,
                                   errors.HashNotFound, errors.NotRuntimeCompatible, errors.Unauthorized,
                                   errors.PayloadTooLarge, errors.ServerBusy, errors.InternalError)}
    wanted = literals | handler_codes | raised | {"invalid_request", "unsupported_parameter"}
    assert {"context_length_exceeded", "not_found", "method_not_allowed"} <= wanted
    assert sorted(wanted - documented) == [], "add these codes to the Errors table of docs/server.md"


def test_metrics_label_is_endpoint() -> None:
    section = HANDBOOK.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| `mlxk_requests_total`"))
    assert "| endpoint, status |" in row
    source = (SERVER_SRC / "metrics.py").read_text()
    assert '["endpoint", "status"]' in source
