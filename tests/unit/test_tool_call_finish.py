"""ToolCallDecoder's finish reason: ``tool_calls`` only when the answer ended on its own after
complete calls; a token limit stays ``length`` (complete calls still delivered, a half-written
call never delivered as a call). A scripted inner decoder stands in for the engine's."""

from __future__ import annotations

import json

import pytest

from mlxk.engine.structured import tools as T
from mlxk.engine.structured.plan import ToolCallDecoder
from mlxk.engine.types import Chunk

CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
HALF = '<tool_call>{"name": "get_time", "arguments": {"tz": "Eur'


class ScriptedDecoder:
    """Token ``i`` reads as ``pieces[i]``; the end token (-1) finishes the sequence, after
    which ``finish`` reports ``stop`` whatever the engine passes (as the real decoder does)."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.finished = False
        self.n = 0

    def feed(self, token_id: int) -> list[Chunk]:
        self.n += 1
        if token_id < 0:
            self.finished = True
            return []
        return [Chunk(text=self.pieces[token_id])]

    def finish(self, reason: str) -> Chunk:
        return Chunk(finish_reason="stop" if self.finished else reason,  # type: ignore[arg-type]
                     completion_tokens=self.n)


def run(pieces: list[str], *, eos: bool, fmt: str = T.HERMES,
        parallel: bool = True) -> list[Chunk]:
    """Feed ``pieces`` (then the end token when ``eos``) as the engine's loop does: stop early
    when the decoder is finished, else the token limit ends the sequence with ``length``."""
    dec = ToolCallDecoder(ScriptedDecoder(pieces), T.ToolCallParser(fmt, parallel))
    out: list[Chunk] = []
    for tid in [*range(len(pieces)), *([-1] if eos else [])]:
        out += dec.feed(tid)
        if dec.finished:
            return [*out, dec.finish("stop")]
    return [*out, dec.finish("length")]


def calls_of(chunks: list[Chunk]) -> list[dict]:
    return [c for ch in chunks for c in ch.tool_calls or []]


def text_of(chunks: list[Chunk]) -> str:
    return "".join(ch.text for ch in chunks)


def split(text: str, n: int = 7) -> list[str]:
    return [text[i:i + n] for i in range(0, len(text), n)]


def test_complete_call_then_the_model_stops_is_tool_calls() -> None:
    chunks = run(split(CALL), eos=True)
    assert chunks[-1].finish_reason == "tool_calls"
    assert [c["function"]["name"] for c in calls_of(chunks)] == ["get_weather"]


def test_complete_call_then_the_limit_is_length_and_the_call_is_delivered() -> None:
    chunks = run([*split(CALL), "\nI will now", " explain"], eos=False)
    assert chunks[-1].finish_reason == "length"
    (call,) = calls_of(chunks)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_limit_right_after_a_complete_call_is_still_length() -> None:
    # the model had not stopped: it might have written another call
    chunks = run([*split(CALL), "\n"], eos=False)
    assert chunks[-1].finish_reason == "length" and len(calls_of(chunks)) == 1


@pytest.mark.parametrize("fmt,first,half", [
    (T.HERMES, CALL, HALF),
    (T.LLAMA3, '{"name": "get_weather", "parameters": {"city": "Paris"}}',
     '; {"name": "get_time", "parameters": {"tz": "Eur'),
], ids=["hermes", "llama3"])
def test_limit_mid_second_call_is_length_without_a_broken_call(fmt: str, first: str,
                                                               half: str) -> None:
    chunks = run([*split(first), *split(half)], eos=False, fmt=fmt)
    assert chunks[-1].finish_reason == "length"
    (call,) = calls_of(chunks)
    assert call["function"]["name"] == "get_weather"
    assert '"tz": "Eur' in text_of(chunks)   # the cut call comes back as text, not as a call


def test_limit_mid_the_only_call_is_length_with_no_call() -> None:
    chunks = run(split(HALF), eos=False)
    assert chunks[-1].finish_reason == "length" and calls_of(chunks) == []
    assert text_of(chunks) == HALF


def test_one_call_without_parallel_calls_ends_the_answer_as_tool_calls() -> None:
    # the parser ends the answer after the first call (what a forced call's grammar does too)
    chunks = run([*split(CALL), *split(CALL)], eos=False, parallel=False)
    assert chunks[-1].finish_reason == "tool_calls" and len(calls_of(chunks)) == 1


def test_plain_answers_keep_their_reason() -> None:
    assert run(["Hello", " there"], eos=True)[-1].finish_reason == "stop"
    assert run(["Hello", " there"], eos=False)[-1].finish_reason == "length"


def test_finish_told_length_after_the_parser_ended_the_answer_is_tool_calls() -> None:
    # an engine loop that ran dry reports length; a call that ended the answer still wins
    dec = ToolCallDecoder(ScriptedDecoder([CALL]), T.ToolCallParser(T.HERMES, False))
    first = dec.feed(0)
    assert dec.finished and dec.finish("length").finish_reason == "tool_calls"
    assert len(calls_of(first)) == 1
