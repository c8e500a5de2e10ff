"""Measure the code: the mlxk import graph (cycles, layer rules), and counts of ``Any`` and ``getattr``.

`python scripts/code_stats.py [SRC_DIR]` prints the numbers. The import-rule test
(tests/unit/test_import_rules.py) uses :func:`import_graph` so the rules are checked on the
same graph this script reports.

Every import counts, including ones inside functions: a lazy import is still a dependency.
Cycles are counted at run time (imports under ``if TYPE_CHECKING:`` left out); the layer rules
see those too.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the ``mlxk`` package: dotted name -> file."""
    return {_module_name(p, src): p for p in sorted((src / "mlxk").rglob("*.py"))}


def _targets(node: ast.AST, here: str, is_pkg: bool, known: dict[str, Path]) -> list[str]:
    """The modules one import statement names (``from a import b`` -> ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        pkg = here.split(".") if is_pkg else here.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if sub in known else base)
    return out


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for b in node.body for n in ast.walk(b))
    return out


def import_graph(src: Path = SRC, runtime_only: bool = False
                 ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(internal, external)``: for each mlxk module, the mlxk modules and the top-level
    third-party/stdlib packages it imports (anywhere in the file; with ``runtime_only``,
    leaving out the imports under ``if TYPE_CHECKING:``)."""
    known = modules(src)
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_only(tree) if runtime_only else set()
        ins, outs = set(), set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in skip:
                continue
            for target in _targets(node, name, path.name == "__init__.py", known):
                if target == "mlxk" or target.startswith("mlxk."):
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target != name:
                        ins.add(target)
                else:
                    outs.add(target.split(".")[0])
        internal[name], external[name] = ins, outs
    return internal, external


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


BASE = "base"


def package_of(module: str) -> str:
    """The layer a module belongs to: ``cli``, ``operations``, ``server``, ``engine``, ``hub``,
    ``cache`` or ``base`` (config, errors, platform, output, schemas, the package root).
    Layer-changing moves must update this one function."""
    if module == "mlxk.__main__":   # `python -m mlxk` is the CLI's entry point
        return "cli"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("cli", "operations", "server", "engine", "hub", "cache"):
        return parts[1]
    return BASE


def package_graph(internal: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, deps in internal.items():
        p = package_of(mod)
        out.setdefault(p, set()).update(package_of(d) for d in deps if package_of(d) != p)
    return out


def counts(src: Path = SRC) -> dict[str, int]:
    """Occurrences of the name ``Any`` (outside import lines) and calls of ``getattr``."""
    n_any = n_getattr = 0
    for path in modules(src).values():
        text = path.read_text()
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string == "Any" and "import" not in tok.line:
                n_any += 1
        n_getattr += sum(1 for n in ast.walk(ast.parse(text))
                         if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                         and n.func.id == "getattr")
    return {"Any": n_any, "getattr": n_getattr}


def main(argv: list[str]) -> None:
    src = Path(argv[0]) if argv else SRC
    internal, _ = import_graph(src)
    mod_cycles = cycles(import_graph(src, runtime_only=True)[0])
    pkg_cycles = cycles(package_graph(internal))
    c = counts(src)
    print(f"modules: {len(internal)}")
    print(f"Any: {c['Any']}  getattr: {c['getattr']}")
    print(f"module import cycles (at run time): {len(mod_cycles)} ({sum(map(len, mod_cycles))} modules)")
    for cyc in mod_cycles:
        print("   ", " <-> ".join(cyc))
    print(f"package import cycles: {len(pkg_cycles)}")
    for cyc in pkg_cycles:
        print("   ", " <-> ".join(cyc))


if __name__ == "__main__":
    main(sys.argv[1:])
