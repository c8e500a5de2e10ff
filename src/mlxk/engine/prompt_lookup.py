"""Prompt-lookup drafts (``--prompt-lookup N``): speculative decoding without a draft model.

The last few tokens of the sequence (prompt + answer so far) are looked up in everything
before them; where they occurred earlier, the tokens that followed that occurrence are the
draft. This pays where the answer repeats its input: code edits, quotes, summaries that copy
names, structured output echoing a schema. The model then verifies the draft in one forward
pass (``engine.speculative`` for ``run``, ``engine.batch_speculative`` inside the server's
batch), so the drafts only decide the speed, never the output.

Matching: the longest suffix n-gram first (``MAX_NGRAM`` down to ``MIN_NGRAM`` tokens), its
most recent earlier occurrence. A 1-token key would propose after nearly every common token
and mostly be rejected, which costs a wider verify step for nothing, so keys are at least two
tokens. How many tokens a sequence drafts adapts to how its drafts fared (``DraftLength``, shared with
the draft-model source). Pure Python, no mlx: an index from n-gram to the end of its latest occurrence is
updated as tokens arrive, so a proposal costs O(MAX_NGRAM), not a scan of the context.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_NGRAM = 3
MIN_NGRAM = 2
MAX_DRAFT = 16   # --prompt-lookup N is at most this


class DraftLength:
    """How many tokens a sequence drafts next: all of the last draft accepted, two more (up to
    the maximum); otherwise one fewer (at least one). A sequence whose drafts keep failing
    then costs a narrow verify pass, one that keeps copying its input drafts the most."""

    def __init__(self, max_draft: int) -> None:
        self.max_draft = max(0, int(max_draft))
        self.current = self.max_draft

    def feedback(self, proposed: int, accepted: int) -> None:
        if proposed == 0:
            return
        if accepted == proposed:
            self.current = min(self.max_draft, self.current + 2)
        else:
            self.current = max(1, self.current - 1)

    def limit(self, limit: int | None) -> int:
        wanted = self.current if limit is None else min(limit, self.current)
        return max(0, wanted)


class PromptLookup(DraftLength):
    """The draft source of one sequence: feed it every token (``extend``), ask ``propose``,
    report how many of a proposal were kept (``feedback``)."""

    def __init__(self, tokens: Iterable[int], max_draft: int) -> None:
        super().__init__(max_draft)
        self.tokens: list[int] = []
        # n-gram -> index just after its latest occurrence that has a following token
        self._index: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def extend(self, tokens: Iterable[int]) -> None:
        for t in tokens:
            self._record_before_append()
            self.tokens.append(int(t))

    def _record_before_append(self) -> None:
        """The n-grams ending at the current last token now get a successor: index them."""
        end = len(self.tokens)
        for n in range(MIN_NGRAM, MAX_NGRAM + 1):
            if end >= n:
                self._index[tuple(self.tokens[end - n:end])] = end

    def propose(self, pending: int | None = None, limit: int | None = None) -> list[int]:
        """Up to ``limit`` (default ``max_draft``) tokens likely to follow the sequence, plus
        ``pending`` when given (a token already chosen but not yet fed to ``extend``)."""
        k = self.limit(limit)
        if k == 0:
            return []
        seq = self.tokens if pending is None else [*self.tokens, int(pending)]
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            if len(seq) <= n:
                continue
            # only occurrences with a successor are indexed, so never the suffix itself
            start = self._index.get(tuple(seq[-n:]))
            if start is not None:
                return seq[start:start + k]
        return []
