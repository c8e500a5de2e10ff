"""A stand-in engine for fast server tests: a random-weight tiny llama and a word "tokenizer".

Real MLX does the batching (the model is a real mlx-lm llama); only the text side
is fake: token ``n`` reads as the word ``w<n>``, token 0 ends the turn. The
interfaces are the engine's (a real ``LoadedModel``, ``prepare`` returning
an object with prompt_tokens/sampler/logits_processors/max_tokens/decoder).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk.cache.runnable import is_path_like
from mlxk.engine.types import Chunk, GenerationRequest, LoadedModel
from mlxk.errors import ModelNotFound
from mlxk.server.pool import Target

VOCAB = 64
CONTEXT = 256
FAKE_MODELS = ("fake/tiny-a", "fake/tiny-b")


class WordTokenizer:
    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [1 + zlib.crc32(word.encode()) % (VOCAB - 1) for word in text.split()]

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
                            tokenize: bool = False) -> str:
        return " ".join(f"{m.get('role')}: {m.get('content') or ''}" for m in messages)

    def decode(self, ids: list[int]) -> str:
        return "".join(f" w{i}" for i in ids if i)


def load_fake(path: Path, name: str, seed: int = 3) -> LoadedModel:
    import mlx.core as mx
    from mlx_lm.models import llama

    args = llama.ModelArgs(model_type="llama", hidden_size=32, num_hidden_layers=1,
                           intermediate_size=64, num_attention_heads=2, rms_norm_eps=1e-5,
                           vocab_size=VOCAB, num_key_value_heads=1)
    mx.random.seed(seed)
    model = llama.Model(args)
    mx.eval(model.parameters())
    return LoadedModel(model=model, tokenizer=WordTokenizer(), eos_token_ids={0}, name=name,
                       path=path, config={"vocab_size": VOCAB}, context_length=CONTEXT,
                       reasoning_format=None, has_chat_template=True, load_seconds=0.0)


@dataclass
class WordDecoder:
    stop: tuple[str, ...] = ()
    prompt_tokens: int = 0
    delay: float = 0.0             # seconds per token ("SLOW" in the prompt): holds the batch busy
    finished: bool = False
    n: int = 0
    text: str = ""
    emitted: int = 0

    def feed(self, token: int) -> list[Chunk]:
        if self.finished:
            return []
        if self.delay:
            time.sleep(self.delay)
        self.n += 1
        if token == 0:
            self.finished = True
            return []
        self.text += f" w{token}"
        for s in self.stop:
            if s in self.text:
                self.text = self.text[:self.text.index(s)]
                self.finished = True
        piece = self.text[self.emitted:]
        self.emitted = len(self.text)
        return [Chunk(text=piece)] if piece else []

    def finish(self, reason: str) -> Chunk:
        return Chunk(finish_reason=reason, prompt_tokens=self.prompt_tokens, completion_tokens=self.n)


@dataclass
class FakePrepared:
    prompt_tokens: list[int]
    max_tokens: int
    decoder: WordDecoder
    sampler: Any = None
    logits_processors: list[Any] = field(default_factory=list)


def _ids(text: str) -> list[int]:
    return [zlib.crc32(w.encode()) % (VOCAB - 1) + 1 for w in text.split()] or [1]


def fake_prepare(lm: Any, request: GenerationRequest) -> FakePrepared:
    if request.messages is not None:
        text = " ".join(f"{m['role']}: {m.get('content') or ''}" for m in request.messages)
    else:
        text = request.prompt or ""
    tokens = list(request.prompt_ids) if request.prompt_ids is not None else _ids(text)
    max_tokens = request.max_tokens or 16
    delay = 0.05 if "SLOW" in text else 0.0
    return FakePrepared(tokens, max_tokens, WordDecoder(request.stop, len(tokens), delay))


def fake_resolver(name: str) -> Target:
    from mlxk.cache.resolve import validate_name
    from mlxk.errors import ValidationError

    if is_path_like(name):
        raise ValidationError(f"model '{name}' is not a model name", param="model")
    validate_name(name)
    if name not in FAKE_MODELS:
        raise ModelNotFound(f"The model '{name}' does not exist", param="model")
    return Target(name, Path("/nonexistent") / name)
