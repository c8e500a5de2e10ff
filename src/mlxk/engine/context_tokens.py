"""The tokens a logits processor has not seen yet.

mlx-lm calls a logits processor as ``processor(tokens, logits)`` with the whole context
(prompt + generated so far), and both ``generate_step`` and ``BatchGenerator`` compute step
*n+1* before they yield token *n*: a processor with state (a grammar matcher, a thinking
budget) cannot rely on what the caller has seen and reads the newest entries off the context
itself. The first call fixes the prompt length: whatever the context holds then is prompt.
"""

from __future__ import annotations

import mlx.core as mx


class NewTokens:
    """One per sequence: ``take(tokens)`` returns the generated ids not returned before."""

    def __init__(self) -> None:
        self.prompt_length: int | None = None
        self.consumed = 0          # generated tokens returned so far

    def take(self, tokens: mx.array) -> list[int]:
        total = int(tokens.shape[-1])
        if self.prompt_length is None:
            self.prompt_length = total
            return []
        start = self.prompt_length + self.consumed
        if total <= start:
            return []
        new = [int(t) for t in tokens.reshape(-1)[start:total].tolist()]
        self.consumed += len(new)
        return new
