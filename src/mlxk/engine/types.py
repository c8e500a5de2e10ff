"""Plain data types shared by the engine, the CLI and the server. No mlx import here.

The engine's one streaming primitive yields ``Chunk``s; `run`, interactive chat,
`serve` (through the batch scheduler) and the distributed ranks all consume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
