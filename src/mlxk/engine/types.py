"""Plain data types shared by the engine, the CLI and the server. No mlx import here.

The engine's one streaming primitive yields ``Chunk``s; `run`, interactive chat,
`serve` (through the batch scheduler) and the distributed ranks all consume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal


@dataclass
class LoadedModel:
    """A text model ready to generate: what every part of the engine, the server and the CLI
    read. ``engine.loader.load_model`` builds it; test fakes build it too (with a stand-in
    tokenizer), so code reads these fields directly instead of probing with ``getattr``."""

    model: Any                          # the mlx-lm nn.Module (mlx types stay out of this module)
    tokenizer: Any                      # mlx_lm TokenizerWrapper (or a stand-in with decode())
    config: dict[str, Any]
    name: str
    path: Path
    eos_token_ids: set[int]             # every id that ends the assistant's turn
    context_length: int
    load_seconds: float = 0.0
    reasoning_format: str | None = None  # None | "think" | "harmony"
    has_chat_template: bool = False
    hidden_token_ids: set[int] = field(default_factory=set)   # special tokens never shown
    marker_token_ids: set[int] = field(default_factory=set)   # markup for the reasoning parser
    cache_options: CacheOptions | None = None                 # --max-kv-size, --kv-bits ...
    draft: Any = None                   # engine.speculative.Draft under `run --draft-model`

    @property
    def effective_context(self) -> int:
        """Tokens attended to at once (the rotating window under ``--max-kv-size``)."""
        if self.cache_options is not None and self.cache_options.max_kv_size is not None:
            return min(self.context_length, self.cache_options.max_kv_size)
        return self.context_length


FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings as plain values; ``engine.sampling`` turns them into mlx-lm callables."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    @classmethod
    def given(cls, *, temperature: float | None = None, top_p: float | None = None,
              top_k: int | None = None, min_p: float | None = None,
              repetition_penalty: float | None = None, seed: int | None = None) -> SamplingParams:
        """The values a user gave (CLI flags, request fields); None keeps the default."""
        values = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "min_p": min_p,
                  "repetition_penalty": repetition_penalty}
        return replace(cls(seed=seed), **{k: v for k, v in values.items() if v is not None})


def message_text(content: Any) -> str:
    """The text of a chat message's ``content``: a string, OpenAI text parts, or nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


@dataclass(frozen=True)
class CacheOptions:
    """How a model keeps its KV cache (``--max-kv-size``, ``--kv-bits`` ...); see ``engine.kvcache``."""

    max_kv_size: int | None = None         # a rotating cache of this many tokens (bounded context)
    kv_bits: int | None = None             # quantize the cache to 4 or 8 bits
    kv_group_size: int = 64
    quantized_kv_start: int = 0            # quantize once the cache holds this many tokens

    @property
    def active(self) -> bool:
        return self.max_kv_size is not None or self.kv_bits is not None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. Exactly one of ``messages`` (chat) or ``prompt`` (raw text) is set."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    prompt_ids: tuple[int, ...] | None = None  # a prompt given as token ids (instead of messages/prompt)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None          # None: derived from the context length, capped
    stop: tuple[str, ...] = ()             # user stop strings (may span tokens)
    use_chat_template: bool = True         # False: send `prompt`/last message raw
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None                # "none" | "auto" | "required" | {"type": "function", ...}
    response_format: dict[str, Any] | None = None  # OpenAI response_format
    logprobs: int | None = None            # top-k logprobs per token (None: off)
    parallel_tool_calls: bool = True       # False: at most one tool call
    reasoning: bool | None = None          # the template's thinking switch (None: its default)
    reasoning_budget: int | None = None    # at most this many thinking tokens (think models; thinking.py)


@dataclass
class Chunk:
    """A piece of output. ``text`` is answer text, ``reasoning`` is thinking text.

    The last chunk of a generation has ``finish_reason`` set and carries the
    final token counts and timing.
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[dict[str, Any]] | None = None
    timing: dict[str, float] | None = None  # load_s, ttft_s, prompt_tps, generation_tps, peak_memory_bytes
