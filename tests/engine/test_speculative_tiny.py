"""Speculative decoding in the single-sequence engine on the tiny random-weight llama:
``--prompt-lookup`` and ``--draft-model`` (a second tiny model sharing the tokenizer, built here
by perturbing the weights) give the plain greedy tokens; logits processors decode plainly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.support.draft_models import perturbed_copy

from mlxk.engine.types import GenerationRequest, SamplingParams

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir: Path):
    from mlxk.engine.loader import load_model

    return load_model(tiny_model_dir, "mlxk-test/tiny-llama")


@pytest.fixture(scope="module")
def draft_lm(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from mlxk.engine.loader import load_model

    dest = perturbed_copy(tiny_model_dir, tmp_path_factory.mktemp("tiny-draft") / "m")
    return load_model(dest, "mlxk-test/tiny-draft")


def _prompts() -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(3, 400) for _ in range(10)] * 3 for _ in range(3)]


def _greedy(lm, ids: list[int], draft=None, **sampling: float) -> tuple[str, dict]:
    from mlxk.engine.generate import complete

    lm.draft = draft
    try:
        c = complete(lm, GenerationRequest(prompt_ids=ids, max_tokens=24,
                                           sampling=SamplingParams(temperature=0.0, **sampling)))
    finally:
        lm.draft = None
    return c.text, c.timing


def test_prompt_lookup_keeps_greedy_tokens(tiny_lm) -> None:
    from mlxk.engine.speculative import Lookup

    accepted = 0
    for ids in _prompts():
        plain, _ = _greedy(tiny_lm, ids)
        spec, timing = _greedy(tiny_lm, ids, Lookup(num_draft=4))
        assert spec == plain
        assert timing["accepted_tokens"] <= timing["draft_tokens"]
        accepted += timing["accepted_tokens"]
    assert accepted > 0


def test_draft_model_keeps_greedy_tokens(tiny_lm, draft_lm) -> None:
    from mlxk.engine.speculative import Draft, check_vocab

    check_vocab(tiny_lm, draft_lm)
    for ids in _prompts():
        plain, _ = _greedy(tiny_lm, ids)
        spec, timing = _greedy(tiny_lm, ids, Draft(lm=draft_lm, num_draft=3))
        assert spec == plain and timing["draft_tokens"] > 0


def test_logits_processors_decode_plainly(tiny_lm) -> None:
    from mlxk.engine.speculative import Lookup

    ids = _prompts()[0]
    plain, _ = _greedy(tiny_lm, ids, repetition_penalty=1.3)
    spec, timing = _greedy(tiny_lm, ids, Lookup(num_draft=4), repetition_penalty=1.3)
    assert spec == plain and timing["draft_tokens"] == 0
