"""Small Markdown readers for the docs tests: fenced blocks, inline code, links, heading anchors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_SKIP_DIRS = {".venv", ".cache", ".git", "node_modules", "build", "dist", ".pytest_cache",
              ".ruff_cache"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def markdown_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every Markdown file of the project (README, CHANGELOG, docs/, bench/ ...)."""
    files = []
    for path in sorted(root.rglob("*.md")):
        rel = path.relative_to(root).parts
        if any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in rel):
            continue
        files.append(path)
    return files


@dataclass(frozen=True)
class Block:
    info: str        # the fence's info string, e.g. "json command=list"
    text: str
    line: int        # 1-based line of the opening fence

    @property
    def lang(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    def attr(self, key: str) -> str | None:
        for word in self.info.split()[1:]:
            k, _, v = word.partition("=")
            if k == key:
                return v.strip("\"'{}")
        return None


def split_fences(text: str) -> tuple[list[Block], str]:
    """The fenced blocks of ``text`` and the text with those blocks blanked out (lines kept)."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, info, start = m.group(2), m.group(3).strip(), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append(Block(info, "\n".join(body), start + 1))
        prose.extend([""] * (i - start + 1))
        i += 1
    return blocks, "\n".join(prose)


_INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def inline_code(prose: str) -> Iterator[str]:
    for m in _INLINE_CODE.finditer(prose):
        yield m.group(2).strip()


def strip_inline_code(prose: str) -> str:
    return _INLINE_CODE.sub("", prose)


_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)


def links(prose: str) -> list[str]:
    """Link targets of inline links, images and reference definitions (code excluded)."""
    text = strip_inline_code(prose)
    return [m.group(1) for m in _LINK.finditer(text)] + [m.group(1) for m in _REF_DEF.finditer(text)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = re.sub(r"`|\*\*|__|<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown document (duplicates get GitHub's -1, -2 suffixes)."""
    _, prose = split_fences(text)
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = github_anchor(m.group(1))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    return out
