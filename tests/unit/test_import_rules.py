"""The layer rules of docs/architecture.md, checked on the import graph of src/mlxk.

cli -> operations -> (server, engine, hub) -> cache -> base (config, errors, platform,
output, schemas). Every import counts, also one inside a function: a lazy import is still
a dependency. The graph is the one `python scripts/code_stats.py` reports.
"""

from __future__ import annotations

import ast

import pytest
from scripts import code_stats

# What each layer may import besides itself (cli sits on top and may import anything).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "cache": {"base"},
    "hub": {"cache", "base"},
    "engine": {"cache", "base"},
    "server": {"engine", "cache", "base"},
    "operations": {"server", "engine", "hub", "cache", "base"},
    "cli": {"operations", "server", "engine", "hub", "cache", "base"},
}
HEAVY = {"mlx", "mlx_lm", "mlx_embeddings", "mlx_vlm", "PIL", "transformers", "torch", "llguidance", "tokenizers"}
# Modules (and packages) that must never import mlx & co, not even lazily and not through
# another mlxk module: list/show/health/rm run them, and the pure parts of the engine are
# tested without a GPU.
PURE = ("mlxk.config", "mlxk.errors", "mlxk.platform", "mlxk.output", "mlxk.schemas", "mlxk.cache",
        "mlxk.hub", "mlxk.engine.types", "mlxk.engine.text", "mlxk.engine.structured.tools",
        "mlxk.engine.distributed.protocol", "mlxk.engine.distributed.shardplan",
        "mlxk.engine.embeddings.config", "mlxk.engine.convert.gguf_header")
ENV_READER = "mlxk.config"


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    return code_stats.import_graph()


def layer_violations(internal: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, deps in sorted(internal.items()):
        layer = code_stats.package_of(mod)
        for dep in sorted(deps):
            to = code_stats.package_of(dep)
            if to != layer and to not in ALLOWED[layer]:
                out.append(f"{mod} ({layer}) imports {dep} ({to})")
    return out


def heavy_reached(internal: dict[str, set[str]], external: dict[str, set[str]], root: str) -> set[str]:
    """Heavy packages ``root`` imports itself or through any mlxk module it imports."""
    seen, todo, found = {root}, [root], set()
    while todo:
        mod = todo.pop()
        found |= external[mod] & HEAVY
        for dep in internal[mod] - seen:
            seen.add(dep)
            todo.append(dep)
    return found


def test_no_import_cycles(graph) -> None:
    """No module cycle at run time (a cycle through ``if TYPE_CHECKING:`` annotations is
    harmless); no cycle between layers at all."""
    internal, _ = graph
    assert code_stats.cycles(code_stats.import_graph(runtime_only=True)[0]) == []
    assert code_stats.cycles(code_stats.package_graph(internal)) == []


def test_every_import_points_down_the_layers(graph) -> None:
    internal, _ = graph
    assert layer_violations(internal) == []


@pytest.mark.parametrize("root", PURE)
def test_pure_modules_never_reach_mlx(graph, root: str) -> None:
    internal, external = graph
    mods = [m for m in internal if m == root or m.startswith(root + ".")]
    assert mods, f"{root} is not a module any more: update PURE"
    for mod in mods:
        assert not heavy_reached(internal, external, mod), mod


def test_only_config_reads_the_environment() -> None:
    readers = []
    for name, path in code_stats.modules().items():
        if name == ENV_READER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if ((isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"))
                    or (isinstance(node, ast.Name) and node.id in ("environ", "getenv"))):
                readers.append(f"{name}:{node.lineno}")
    assert readers == []


def test_the_rules_can_fail(graph) -> None:
    """A planted upward import, a planted cycle and a planted mlx import are all caught."""
    internal, external = graph
    bad = {k: set(v) for k, v in internal.items()}
    bad["mlxk.engine.types"].add("mlxk.server.pool")
    bad["mlxk.server.pool"].add("mlxk.engine.types")
    assert "mlxk.engine.types (engine) imports mlxk.server.pool (server)" in layer_violations(bad)
    assert any({"mlxk.engine.types", "mlxk.server.pool"} <= set(c) for c in code_stats.cycles(bad))
    assert "mlx" in heavy_reached(bad, external, "mlxk.engine.types")


def test_test_modules_import_helpers_from_tests_support_only() -> None:
    """Shared helpers live in tests/support; a test module importing another one runs (and
    couples) that module's fixtures and servers."""
    root = code_stats.SRC.parent / "tests"
    offenders = []
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("tests.") and module.split(".")[-1].startswith("test_"):
                offenders.append(f"{path.relative_to(root)} imports {module}")
    assert offenders == []
