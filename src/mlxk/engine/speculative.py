"""Speculative decoding with a draft model (``mlxk run --draft-model``), on mlx-lm's
``speculative_generate_step``: the draft proposes ``num_draft`` tokens, the model verifies
them in one forward pass and keeps the longest agreeing prefix plus its own next token, so
greedy output is token-for-token the plain output (with sampling, mlx-lm's acceptance rule).

The draft must share the model's vocabulary (the same token ids mean the same text). Counts:
``accepted`` tokens came from the draft; every verify round drafted ``num_draft`` tokens
(the last round may draft fewer when ``max_tokens`` ends it, so ``drafted`` is an upper bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlxk.errors import ValidationError


@dataclass
class Draft:
    lm: Any                 # the draft LoadedModel
    num_draft: int = 3
    drafted: int = 0
    accepted: int = 0

    def metrics(self) -> dict[str, float]:
        rate = self.accepted / self.drafted if self.drafted else 0.0
        return {"draft_tokens": float(self.drafted), "accepted_tokens": float(self.accepted),
                "acceptance_rate": rate}


def check_vocab(model_lm: Any, draft_lm: Any) -> None:
    """Refuse a draft whose tokenizer does not map ids to the same tokens."""
    def vocab(lm: Any) -> dict[str, int]:
        try:
            return dict(lm.tokenizer.get_vocab())
        except Exception:
            return {}

    if vocab(model_lm) != vocab(draft_lm) or not vocab(model_lm):
        raise ValidationError(f"draft model {draft_lm.name} does not share the vocabulary of "
                              f"{model_lm.name}; speculative decoding needs the same tokenizer")


def steps(lm: Any, draft: Draft, prompt: Any, *, max_tokens: int, sampler: Any,
          logits_processors: list[Any] | None) -> Iterator[int]:
    """Token ids, as ``generate_step`` would give them; counts drafted/accepted on ``draft``."""
    from mlx_lm.generate import speculative_generate_step

    gen = speculative_generate_step(prompt, lm.model, draft.lm.model, num_draft_tokens=draft.num_draft,
                                    max_tokens=max_tokens, sampler=sampler,
                                    logits_processors=logits_processors)
    try:
        for token, _logprobs, from_draft in gen:
            if from_draft:
                draft.accepted += 1
            else:
                draft.drafted += draft.num_draft
            yield int(token)
    finally:
        gen.close()
