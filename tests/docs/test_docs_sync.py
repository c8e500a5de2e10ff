"""The docs and the CLI agree: the generated reference is fresh, and every `mlxk ...` line in the
docs uses commands and flags that exist, while every command and flag of --help is documented."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from scripts import gen_docs

from mlxk.cli.cli_spec import CliSpec, cli_spec
from tests.support.markdown import REPO_ROOT, inline_code, markdown_files, split_fences

PROGS = {"mlxk", "mlxk2", "mlxk-json"}
FIX = "run `python scripts/gen_docs.py` and commit the result"


@pytest.fixture(scope="module")
def spec() -> CliSpec:
    return cli_spec()


# --------------------------------------------------------------------------- invocations in docs
def _segments(line: str) -> list[str]:
    line = line.strip()
    line = re.sub(r"^\$\s+", "", line)
    return [s.strip() for s in re.split(r"\|\||&&|\||;|\$\(|`", line) if s.strip()]


def invocations(text: str) -> list[list[str]]:
    """Every ``mlxk ...`` command line in a Markdown text (code blocks and inline code)."""
    blocks, prose = split_fences(text)
    candidates = [line for b in blocks if b.lang in ("", "bash", "sh", "shell", "console", "zsh",
                                                     "fish", "text")
                  for line in b.text.splitlines()]
    candidates += list(inline_code(prose))
    found = []
    for line in candidates:
        for seg in _segments(line):
            try:
                words = shlex.split(seg, comments=True)
            except ValueError:
                words = seg.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]  # VAR=value mlxk ...
            if len(words) >= 2 and words[0] in PROGS:
                found.append(words)
    return found


def _problems(words: list[str], spec: CliSpec) -> list[str]:
    global_flags = {n for f in spec.global_flags for n in f.names}
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        if rest[0] not in global_flags:
            return [f"unknown global flag {rest[0]}"]
        rest = rest[1:]
    if not rest or rest[0].startswith("<") or rest[0] in ("COMMAND", "..."):
        return []
    try:
        cmd = spec.command(rest[0])
    except KeyError:
        return [f"unknown command {rest[0]!r}"]
    known = global_flags | {n for f in cmd.flags for n in f.names}
    bad = []
    for w in rest[1:]:
        if w == "--":
            break
        if re.match(r"^--?[A-Za-z]", w) and w.split("=", 1)[0] not in known:
            bad.append(f"mlxk {cmd.name}: unknown flag {w.split('=', 1)[0]}")
    return bad


def _doc_files() -> list[Path]:
    return [p for p in markdown_files() if p.name != "CHANGELOG.md"]


def test_every_mlxk_line_in_the_docs_exists_in_help(spec: CliSpec) -> None:
    problems = []
    for md in _doc_files():
        for words in invocations(md.read_text()):
            problems += [f"{md.relative_to(REPO_ROOT)}: `{' '.join(words)}`: {p}"
                         for p in _problems(words, spec)]
    assert problems == []


def test_invocation_checker_can_fail(spec: CliSpec) -> None:
    text = "```bash\nmlxk list --jsn\nmlxk frobnicate\nHF_HOME=/x mlxk show m --json\n```\n"
    found = invocations(text)
    assert [w[1] for w in found] == ["list", "frobnicate", "show"]
    assert _problems(found[0], spec) == ["mlxk list: unknown flag --jsn"]
    assert _problems(found[1], spec) == ["unknown command 'frobnicate'"]
    assert _problems(found[2], spec) == []


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (mlxk(?: [\w-]+)?)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_command_and_flag_of_help_is_in_the_reference(spec: CliSpec) -> None:
    sections = _sections(gen_docs.COMMANDS_MD.read_text())
    missing = []
    for cmd in spec.commands:
        body = sections.get(f"mlxk {cmd.name}")
        if body is None:
            missing.append(f"mlxk {cmd.name}: no section")
            continue
        missing += [f"mlxk {cmd.name}: {n}" for f in cmd.flags for n in f.names
                    if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", body)]
        missing += [f"mlxk {cmd.name}: alias {a}" for a in cmd.aliases if a not in body]
    assert missing == []


def test_every_command_is_used_in_the_handwritten_docs(spec: CliSpec) -> None:
    used = set()
    for md in _doc_files():
        if md == gen_docs.COMMANDS_MD:
            continue
        for words in invocations(md.read_text()):
            rest = [w for w in words[1:] if not w.startswith("-")]
            if rest:
                used.add(rest[0])
    missing = [c.name for c in spec.commands if not set(c.names) & used]
    assert missing == [], "commands never shown in README.md or docs/ (write an example)"


def test_generator_check_mode_reports_stale_files(tmp_path: Path, monkeypatch) -> None:
    stale = tmp_path / "commands.md"
    stale.write_text("old\n")
    monkeypatch.setattr(gen_docs, "COMMANDS_MD", stale)
    monkeypatch.setattr(gen_docs, "JSON_API_MD", tmp_path / "absent.md")
    assert gen_docs.main(["--check"]) == 1
    assert stale.read_text() == "old\n"
    assert gen_docs.main([]) == 0 and gen_docs.main(["--check"]) == 0


def test_every_error_type_is_explained() -> None:
    missing = [cls.code for cls in gen_docs.error_classes() if cls.code not in gen_docs.ERROR_NOTES]
    assert missing == [], "add a line for these error types to ERROR_NOTES in scripts/gen_docs.py"


def test_every_environment_variable_is_explained() -> None:
    names = gen_docs.env_vars_read()
    assert {"HF_HOME", "MLXK_API_KEY", "MLXK_JSON"} <= set(names)
    missing = [n for n in names if not gen_docs.ENV_NOTES.get(n)]
    assert missing == [], "add these variables to ENV_NOTES in scripts/gen_docs.py"
