"""Reasoning splitters and stop strings on synthetic streams split at every position."""

from __future__ import annotations

import itertools

import pytest

from mlxk.engine.text.decoder import StopMatcher
from mlxk.engine.text.reasoning import HarmonySplitter, ThinkSplitter, held_suffix, split_text


def _splits(text: str, cuts: int = 2):
    """Every way to cut ``text`` into pieces at ``cuts - 1`` positions."""
    for points in itertools.combinations(range(1, len(text)), cuts - 1):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def _run(splitter, pieces):
    out = []
    for p in pieces:
        out += splitter.feed(p)
    out += splitter.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    text = "".join(t for k, t in out if k == "text")
    return reasoning, text, out


THINK = "<think>\nLet me see: 2+2.\n</think>\n\nIt is 4."


@pytest.mark.parametrize("cuts", [2, 3])
def test_think_every_split(cuts: int) -> None:
    for pieces in _splits(THINK, cuts):
        reasoning, text, out = _run(ThinkSplitter(), pieces)
        assert reasoning == "Let me see: 2+2.\n", pieces
        assert text == "It is 4.", pieces
        assert not any("<" in t for _, t in out), pieces


def test_think_preopened_by_template_every_split() -> None:
    stream = "I should answer briefly.</think>Paris."
    for pieces in _splits(stream, 2):
        reasoning, text, _ = _run(ThinkSplitter(start_in_reasoning=True), pieces)
        assert (reasoning, text) == ("I should answer briefly.", "Paris."), pieces


def test_think_unclosed_block_stays_reasoning_and_plain_text_passes() -> None:
    assert split_text("<think>still thinking", "think") == ("still thinking", "")
    assert split_text("a < b and <thin", "think") == ("", "a < b and <thin")
    assert split_text("no markers at all", None) == ("", "no markers at all")


HARMONY = ("<|channel|>analysis<|message|>User asks capital. Answer Paris.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>The capital is Paris.<|return|>")


@pytest.mark.parametrize("cuts", [2, 3])
def test_harmony_every_split(cuts: int) -> None:
    text_pieces = list(_splits(HARMONY, cuts))
    if cuts == 3:
        text_pieces = text_pieces[::7]  # keep the run short; still thousands of splits
    for pieces in text_pieces:
        reasoning, text, out = _run(HarmonySplitter(), pieces)
        assert reasoning == "User asks capital. Answer Paris.", pieces
        assert text == "The capital is Paris.", pieces
        assert not any("<|" in t or "|>" in t for _, t in out), pieces


def test_harmony_commentary_is_text_and_bare_text_is_shown() -> None:
    s = "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>final<|message|>Done."
    assert split_text(s, "harmony") == ("", "Checking.Done.")
    bare = "The model ignored the format and just answered at length here."
    assert split_text(bare, "harmony") == ("", bare)


def test_held_suffix() -> None:
    assert held_suffix("abc <thi", ["<think>"]) == 4
    assert held_suffix("abc", ["<think>"]) == 0
    assert held_suffix("x<", ["<think>", "</think>"]) == 1


STOPS = ("END", "\n\nUser:")


@pytest.mark.parametrize("cuts", [2, 3])
def test_stop_string_spanning_pieces(cuts: int) -> None:
    stream = "Answer: yes.\n\nUser: more? END"
    for pieces in _splits(stream, cuts):
        m = StopMatcher(STOPS)
        emitted = ""
        for p in pieces:
            emitted += m.feed(p)
            # Never a stop string or a partial one that later completes.
            assert "\n\nU" not in emitted and "END" not in emitted
        emitted += m.flush()
        assert m.matched == "\n\nUser:", pieces
        assert emitted == "Answer: yes.", pieces


def test_partial_stop_is_released_when_it_does_not_complete() -> None:
    for pieces in _splits("The END-less story EN", 2):
        m = StopMatcher(("END!",))
        emitted = "".join(m.feed(p) for p in pieces) + m.flush()
        assert m.matched is None
        assert emitted == "The END-less story EN"
    m = StopMatcher(("STOP",))
    assert m.feed("abc ST") == "abc "
    assert m.feed("OPxyz") == ""
    assert m.matched == "STOP" and m.flush() == ""
