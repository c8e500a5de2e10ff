"""After `make demo` a newcomer is told how to reach what it built (mlxk on PATH, the cache)."""

from __future__ import annotations

import importlib.util

from tests.support.markdown import REPO_ROOT


def _demo():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("demo", REPO_ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prints_the_two_lines_to_copy() -> None:
    text = _demo().next_steps("/x/.cache/hf_home")
    lines = [line.strip() for line in text.splitlines()]
    assert f"source {REPO_ROOT}/.venv/bin/activate" in lines
    assert "export HF_HOME=/x/.cache/hf_home" in lines
    assert "print(next_steps(" in (REPO_ROOT / "scripts" / "demo.py").read_text()   # main() ends with them


def test_readme_says_how_to_use_what_make_demo_built() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    head = readme[:readme.index("## Contents")]
    assert "source .venv/bin/activate" in head and "HF_HOME" in head and ".cache/hf_home" in head
