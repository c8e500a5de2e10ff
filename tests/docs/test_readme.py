"""The README keeps its contract: the two commands up top, the tour, the performance section."""

from __future__ import annotations

import re

from tests.support.markdown import REPO_ROOT, split_fences

README = (REPO_ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    blocks, _ = split_fences(README)
    first = blocks[0].text
    assert re.search(r"^make demo\b", first, re.M) and re.search(r"^make test\b", first, re.M)
    assert README.index("make demo") < README.index("## ")


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_readme_has_tour_platforms_and_performance() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert "Performance" in headings
    assert any("tour" in h.lower() for h in headings)
    for word in ("mlxk list", "mlxk pull", "mlxk run", "mlxk serve", "mlxk embed", "from openai import OpenAI"):
        assert word in README, word
    for platform in ("Metal", "CPU", "CUDA"):
        assert platform in README
