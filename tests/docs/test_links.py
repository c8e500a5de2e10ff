"""Every relative Markdown link in the repo points at an existing file (and heading)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support.markdown import (
    REPO_ROOT,
    anchors,
    github_anchor,
    links,
    markdown_files,
    split_fences,
)

_SCHEMES = ("http://", "https://", "mailto:", "ftp://", "data:")


def _check(md: Path) -> list[str]:
    text = md.read_text()
    _, prose = split_fences(text)
    problems = []
    for target in links(prose):
        if target.startswith(_SCHEMES):
            continue
        path_part, _, anchor = target.partition("#")
        dest = md if not path_part else (md.parent / unquote(path_part)).resolve()
        if not dest.is_relative_to(REPO_ROOT):
            problems.append(f"{target}: leaves the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(md: Path) -> None:
    assert _check(md) == []


def test_link_checker_catches_broken_links(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a missing file and a missing anchor.
    doc = REPO_ROOT / "docs" / "__link_probe__.md"
    doc.write_text("# Probe\n\n[a](nope.md) [b](#missing) [c](#probe) [d](../README.md)\n")
    try:
        problems = _check(doc)
    finally:
        doc.unlink()
    assert problems == ["nope.md: no such file", "#missing: no heading with anchor #missing in __link_probe__.md"]


def test_github_anchor_rules() -> None:
    assert github_anchor("mlxk list") == "mlxk-list"
    assert github_anchor("`list` and `show`") == "list-and-show"
    assert github_anchor("From Ollama: commands & API") == "from-ollama-commands--api"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
