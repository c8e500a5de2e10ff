"""Stand-in for the engine's loader/generate until they land on main (removed then)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlxk.engine.types import Chunk, GenerationRequest


def wrap(path: Path, name: str, model: Any, config: dict[str, Any]) -> Any:
    from mlx_lm.utils import load_tokenizer

    tok = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    return SimpleNamespace(model=model, tokenizer=tok, config=config, name=name, path=path,
                           eos_token_ids=set(tok.eos_token_ids))


def stream(lm: Any, request: GenerationRequest) -> Iterator[Chunk]:
    import mlx.core as mx
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    s = request.sampling
    if s.seed is not None:
        mx.random.seed(s.seed)
    if request.messages is not None:
        prompt = lm.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True)
    else:
        prompt = lm.tokenizer.encode(request.prompt or "")
    sampler = make_sampler(s.temperature, s.top_p, min_p=s.min_p, top_k=s.top_k)
    n = 0
    reason = "length"
    for r in stream_generate(lm.model, lm.tokenizer, prompt, max_tokens=request.max_tokens or 64,
                             sampler=sampler):
        n = r.generation_tokens
        if r.token in lm.eos_token_ids:
            reason = "stop"
            break
        yield Chunk(text=r.text)
        if r.finish_reason:
            reason = r.finish_reason
    yield Chunk(finish_reason=reason, prompt_tokens=len(prompt), completion_tokens=n)
