"""The thinking budget: ``text.reasoning.ThinkBudget`` (pure counting) and
``engine.thinking`` (the logits processor), with a fake tokenizer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlxk.engine.text.reasoning import ThinkBudget

OPEN, CLOSE, WORD = 1, 2, 7


def run(budget: ThinkBudget, model: list[int]) -> list[int]:
    """Generate with a 'model' that would write ``model`` token by token (forced ids win)."""
    out: list[int] = []
    wanted = iter(model)
    for _ in range(len(model)):
        forced = budget.forced()
        tok = forced if forced is not None else next(wanted)
        out.append(tok)
        budget.feed(tok)
    return out


def test_a_preopened_block_is_closed_after_the_budget() -> None:
    out = run(ThinkBudget(3, [OPEN], [CLOSE], in_reasoning=True), [WORD] * 8)
    assert out == [WORD, WORD, WORD, CLOSE, WORD, WORD, WORD, WORD]


def test_a_block_the_model_opens_gets_the_budget_and_its_own_close_ends_the_count() -> None:
    b = ThinkBudget(2, [OPEN], [CLOSE])
    assert run(b, [WORD, OPEN, WORD, WORD, WORD, WORD]) == [WORD, OPEN, WORD, WORD, CLOSE, WORD]
    b = ThinkBudget(3, [OPEN], [CLOSE], in_reasoning=True)
    assert run(b, [WORD, CLOSE, WORD, WORD, WORD, WORD]) == [WORD, CLOSE, WORD, WORD, WORD, WORD]
    assert b.forced_closes == 0
    again = ThinkBudget(1, [OPEN], [CLOSE])   # every block gets the budget
    assert run(again, [OPEN, WORD, WORD, OPEN, WORD, WORD, WORD]) == \
        [OPEN, WORD, CLOSE, WORD, OPEN, WORD, CLOSE]


def test_a_multi_token_close_tag_is_forced_whole_and_zero_closes_at_once() -> None:
    b = ThinkBudget(1, [OPEN], [5, 6], in_reasoning=True)
    assert run(b, [WORD] * 5) == [WORD, 5, 6, WORD, WORD]
    assert run(ThinkBudget(0, [OPEN], [CLOSE], True), [WORD] * 3) == [CLOSE, WORD, WORD]
    with pytest.raises(ValueError):
        ThinkBudget(-1, [OPEN], [CLOSE])


mx = pytest.importorskip("mlx.core")


TAG_IDS = {"<think>": [OPEN], "</think>": [CLOSE]}


class FakeTokenizer:
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return TAG_IDS[text]


def test_processor_forces_the_close_token_after_the_budget() -> None:
    from mlxk.engine import thinking

    lm = SimpleNamespace(reasoning_format="think", tokenizer=FakeTokenizer())
    proc = thinking.budget_processor(lm, 2, in_reasoning=True)
    prompt = [9, 9, OPEN]
    logits = mx.zeros((1, 10))
    tokens = list(prompt)
    picked = []
    for _ in range(5):
        out = proc(mx.array(tokens), logits)
        allowed = [i for i, v in enumerate(out[0].tolist()) if v != float("-inf")]
        tok = allowed[0] if len(allowed) == 1 else WORD
        picked.append(tok)
        tokens.append(tok)
    assert picked == [WORD, WORD, CLOSE, WORD, WORD]
    assert thinking.budget_processor(SimpleNamespace(reasoning_format=None, tokenizer=FakeTokenizer()),
                                     2, True) is None
    assert thinking.budget_processor(SimpleNamespace(reasoning_format="harmony",
                                                     tokenizer=FakeTokenizer()), 2, True) is None


def test_anthropic_budget_tokens_reach_the_request() -> None:
    from mlxk.errors import ValidationError
    from mlxk.server.dialects import anthropic as ant

    def budget(thinking: dict | None) -> int | None:
        body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}],
                **({"thinking": thinking} if thinking else {})}
        return ant.to_core(ant.MessagesRequest.model_validate(body)).gen.reasoning_budget

    assert budget({"type": "enabled", "budget_tokens": 1024}) == 1024
    assert budget({"type": "enabled", "budget_tokens": 3}) == 3      # below Anthropic's 1024: fine
    assert [budget(t) for t in (None, {"type": "adaptive"}, {"type": "disabled"},
                                {"type": "enabled"})] == [None, None, None, None]
    for bad in (0, -5, 2.5, True, "10"):
        with pytest.raises(ValidationError):
            budget({"type": "enabled", "budget_tokens": bad})
