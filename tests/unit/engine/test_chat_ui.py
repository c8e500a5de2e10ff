"""Terminal rendering of answers and the chat input reader (no model)."""

from __future__ import annotations

import io

from mlxk.cli.chat_ui import AnswerPrinter, print_stream, read_message
from mlxk.engine.types import Chunk
from mlxk.output.console import Output


def _chunks():
    return iter([Chunk(reasoning="Let me think."), Chunk(reasoning=" Done."), Chunk(text="Paris"),
                 Chunk(text=" it is.", finish_reason="stop")])


def test_reasoning_is_separated_from_the_answer() -> None:
    buf = io.StringIO()
    print_stream(_chunks(), AnswerPrinter(buf))
    out = buf.getvalue()
    assert out == "Thinking...\nLet me think. Done.\n...done thinking.\n\nParis it is.\n"


def test_hide_reasoning_prints_only_the_answer() -> None:
    buf = io.StringIO()
    print_stream(_chunks(), AnswerPrinter(buf, hide_reasoning=True))
    assert buf.getvalue() == "Paris it is.\n"


def test_multiline_input_between_triple_quotes() -> None:
    stdin = io.StringIO('"""\nline one\n  line two\n"""\nsingle\n"""inline"""\n')
    out = Output("run", False, stdout=io.StringIO(), stderr=io.StringIO(), stdin=stdin)
    assert read_message(out) == "line one\n  line two"
    assert read_message(out) == "single"
    assert read_message(out) == "inline"
    assert read_message(out) is None


def test_verbose_line_shows_speculation_counts() -> None:
    from mlxk.cli.chat_ui import verbose_line
    from mlxk.engine.types import Chunk

    plain = Chunk(finish_reason="stop", prompt_tokens=3, completion_tokens=5, timing={"generation_tps": 9.0})
    assert "drafted" not in verbose_line(plain, "m")
    spec = Chunk(finish_reason="stop", prompt_tokens=3, completion_tokens=5,
                 timing={"draft_tokens": 8.0, "accepted_tokens": 6.0, "acceptance_rate": 0.75})
    assert verbose_line(spec, "m").endswith("| drafted 8, accepted 6 (75%)")
