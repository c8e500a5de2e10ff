"""Prompt-lookup drafting (pure Python) and the acceptance count."""

from __future__ import annotations

from mlxk.engine.prompt_lookup import PromptLookup
from mlxk.engine.speculative import accept


def test_proposes_what_followed_the_latest_earlier_occurrence() -> None:
    d = PromptLookup([5, 1, 2, 3, 4, 9, 1, 2, 7, 8], max_draft=3)
    assert d.propose() == []                      # suffix (7, 8) never occurred before
    d.extend([1, 2])
    assert d.propose() == [7, 8, 1]               # latest earlier (1, 2) is followed by 7 8 ...
    assert d.propose(limit=1) == [7]
    assert d.propose(limit=0) == []


def test_longest_ngram_wins_and_pending_counts() -> None:
    d = PromptLookup([1, 2, 3, 10, 9, 2, 3, 20, 1], max_draft=2)
    assert d.propose(pending=2) == [3, 10]        # (1, 2) occurred once, at the start
    d.extend([2, 3])
    assert d.propose() == [10, 9]                 # 3-gram (1, 2, 3) beats the later 2-gram (2, 3)


def test_never_proposes_from_the_suffix_itself_and_handles_runs() -> None:
    d = PromptLookup([4, 4], max_draft=4)
    assert d.propose() == []                      # the only (4, 4) is the suffix
    d.extend([4])
    assert d.propose() == [4]                     # a run: what followed the earlier (4, 4)
    assert PromptLookup([], 4).propose(pending=1) == []


def test_accept_counts_the_agreeing_prefix() -> None:
    assert accept([1, 2, 3], [1, 2, 9, 5]) == 2
    assert accept([], [7]) == 0
    assert accept([1, 2], [1, 2, 6]) == 2
    assert accept([3], [1, 3]) == 0


def test_draft_length_follows_acceptance() -> None:
    from mlxk.engine.prompt_lookup import DraftLength

    d = DraftLength(4)
    d.feedback(4, 1)
    d.feedback(3, 0)
    assert d.limit(None) == 2 and d.limit(1) == 1
    d.feedback(2, 0)
    d.feedback(1, 0)
    assert d.limit(None) == 1                     # never below one
    d.feedback(1, 1)
    assert d.limit(None) == 3
    d.feedback(3, 3)
    d.feedback(0, 0)                              # nothing proposed: no change
    assert d.limit(None) == 4                     # never above the maximum
