"""The engine on the tiny random-weight llama: loading facts, prepare, stream, complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxk.engine.types import GenerationRequest, SamplingParams

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir: Path):
    from mlxk.engine.loader import load_model

    return load_model(tiny_model_dir, "mlxk-test/tiny-llama")


def test_loaded_model_facts(tiny_lm) -> None:
    tok = tiny_lm.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    assert im_end in tiny_lm.eos_token_ids
    assert im_start in tiny_lm.hidden_token_ids and im_start not in tiny_lm.eos_token_ids
    assert tiny_lm.context_length == 2048
    assert tiny_lm.has_chat_template and tiny_lm.reasoning_format is None
    assert tiny_lm.load_seconds > 0 and tiny_lm.name == "mlxk-test/tiny-llama"


def test_prepare_uses_chat_template_and_default_max_tokens(tiny_lm) -> None:
    from mlxk import config
    from mlxk.engine.generate import prepare

    req = GenerationRequest(messages=[{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Hello"}], sampling=GREEDY)
    p = prepare(tiny_lm, req)
    assert p.prompt_text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello"
                             "<|im_end|>\n<|im_start|>assistant\n")
    assert p.max_tokens == min(config.DEFAULT_MAX_TOKENS_CAP, 2048 - len(p.prompt_tokens))
    raw = prepare(tiny_lm, GenerationRequest(messages=req.messages, use_chat_template=False))
    assert raw.prompt_text == "Be brief.\n\nHello"
    assert prepare(tiny_lm, GenerationRequest(prompt="Hello")).prompt_text == "Hello"


def test_stream_counts_and_length(tiny_lm) -> None:
    from mlxk.engine.generate import complete, stream

    req = GenerationRequest(prompt="Hello world", sampling=GREEDY, max_tokens=5)
    chunks = list(stream(tiny_lm, req))
    final = chunks[-1]
    assert final.finish_reason in ("length", "stop")
    assert final.prompt_tokens == len(tiny_lm.tokenizer.encode("Hello world"))
    assert 1 <= final.completion_tokens <= 5
    assert set(final.timing) >= {"ttft_s", "generation_tps", "prompt_tps", "peak_memory_bytes"}
    again = complete(tiny_lm, req)  # greedy: deterministic
    assert again.text == "".join(c.text for c in chunks)
    assert again.completion_tokens == final.completion_tokens


def test_seeded_sampling_is_reproducible(tiny_lm) -> None:
    from mlxk.engine.generate import complete

    req = GenerationRequest(prompt="Numbers:", max_tokens=6,
                            sampling=SamplingParams(temperature=1.0, seed=7))
    assert complete(tiny_lm, req).text == complete(tiny_lm, req).text


def test_chat_session_history(tiny_lm) -> None:
    from mlxk.errors import ValidationError
    from mlxk.operations.run import ChatSession, RunOptions, Turn

    s = ChatSession(tiny_lm, RunOptions(sampling=GREEDY, max_tokens=3, system="Be brief."))
    turn = Turn()
    list(s.ask("Hello", turn))
    assert turn.final is not None and not turn.interrupted
    assert [m["role"] for m in s.messages()] == ["system", "user", "assistant"]
    assert s.messages()[-1]["content"] == turn.text
    # Cut short by the consumer (Ctrl-C in the chat): what was said stays in the history.
    gen = s.ask("Again")
    next(gen, None)
    gen.close()
    assert [m["role"] for m in s.history] == ["user", "assistant", "user", "assistant"]
    # A turn that cannot run (longer than the context) leaves no trace.
    with pytest.raises(ValidationError):
        list(s.ask("Hello " * 3000))
    assert len(s.history) == 4
    s.clear()
    s.set_system(None)
    assert s.messages() == []
