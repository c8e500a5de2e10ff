"""`run`: resolve and check a model, load it, and talk to it (single-shot or a chat session)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlxk.cache import runnable
from mlxk.cache.resolve import ResolvedModel
from mlxk.engine.types import CacheOptions, Chunk, GenerationRequest, LoadedModel, SamplingParams

if TYPE_CHECKING:
    from mlxk.engine.speculative import Draft


@dataclass(frozen=True)
class RunOptions:
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    system: str | None = None
    use_chat_template: bool = True
    response_format: dict[str, Any] | None = None   # run --json-schema (structured output)


def resolve_runnable(ref: str) -> ResolvedModel:
    """Resolve ``ref`` and refuse, before loading, what ``run`` cannot run."""
    return runnable.resolve_runnable(ref, "text", runnable.CLI_TEXT)


def load(ref: str, cache_options: CacheOptions | None = None,
         adapter_path: str | None = None) -> LoadedModel:
    """``LoadedModel`` for ``ref`` (resolved and checked first), with its KV-cache options
    and an optional LoRA adapter."""
    from mlxk.engine.loader import load_model

    resolved = resolve_runnable(ref)
    if adapter_path is not None:
        from mlxk.engine.adapters import read_config

        read_config(adapter_path)   # a bad folder fails before the weights load
    lm = load_model(resolved.path, name=resolved.display, adapter_path=adapter_path)
    lm.cache_options = cache_options
    return lm


def load_draft(lm: LoadedModel, ref: str, num_draft: int,
               cache_options: CacheOptions | None) -> Draft:
    """The draft model for speculative decoding, checked against ``lm``."""
    from mlxk.engine import speculative
    from mlxk.errors import ValidationError

    if not 1 <= num_draft <= 16:
        raise ValidationError("--num-draft-tokens must be between 1 and 16")
    if cache_options is not None and cache_options.active:
        raise ValidationError("--draft-model does not combine with --max-kv-size or --kv-bits yet")
    draft = load(ref)
    speculative.check_vocab(lm, draft)
    return speculative.Draft(draft, num_draft)


def single_request(text: str, options: RunOptions) -> GenerationRequest:
    messages: list[dict[str, Any]] = []
    if options.system:
        messages.append({"role": "system", "content": options.system})
    messages.append({"role": "user", "content": text})
    return GenerationRequest(messages=messages, sampling=options.sampling,
                             max_tokens=options.max_tokens, stop=options.stop,
                             use_chat_template=options.use_chat_template,
                             response_format=options.response_format)


def combine_stdin(words: list[str], stdin_text: str | None) -> str:
    """``run M - "summarize"``: the words are the instruction, stdin the material."""
    instruction = " ".join(w for w in words if w != "-").strip()
    if stdin_text is None:
        return instruction
    material = stdin_text.rstrip("\n")
    return f"{instruction}\n\n{material}" if instruction else material


@dataclass
class Turn:
    """What one answer produced (filled while streaming, also when interrupted)."""

    text: str = ""
    reasoning: str = ""
    final: Chunk | None = None
    interrupted: bool = False

    def add(self, chunk: Chunk) -> None:
        self.text += chunk.text
        self.reasoning += chunk.reasoning
        if chunk.finish_reason:
            self.final = chunk


class ChatSession:
    """Interactive chat state: the full message history, the system prompt, options."""

    def __init__(self, lm: LoadedModel, options: RunOptions) -> None:
        self.lm = lm
        self.options = options
        self.system = options.system
        self.history: list[dict[str, Any]] = []

    def messages(self) -> list[dict[str, Any]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def clear(self) -> None:
        self.history.clear()

    def set_system(self, text: str | None) -> None:
        self.system = text or None

    def ask(self, text: str, turn: Turn | None = None) -> Iterator[Chunk]:
        """Stream the answer to ``text``; the exchange joins the history when the answer
        ends, also when it is cut short (Ctrl-C keeps what was said)."""
        from mlxk.engine.generate import stream

        turn = turn if turn is not None else Turn()
        self.history.append({"role": "user", "content": text})
        request = replace(single_request(text, self.options), messages=self.messages())
        try:
            for chunk in stream(self.lm, request):
                turn.add(chunk)
                yield chunk
        except (KeyboardInterrupt, GeneratorExit):
            turn.interrupted = True
            self.history.append({"role": "assistant", "content": turn.text})
            raise
        except BaseException:
            self.history.pop()   # a failed turn (e.g. context full) leaves no trace
            raise
        self.history.append({"role": "assistant", "content": turn.text})


_UNSET: Any = object()


def result_data(model: str, prompt: str, turn: Turn, parsed: Any = _UNSET) -> dict[str, Any]:
    """The ``--json`` data of a single-shot run."""
    final = turn.final or Chunk(finish_reason="stop")
    data: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "response": turn.text,
        "usage": {"prompt_tokens": final.prompt_tokens, "completion_tokens": final.completion_tokens},
        "finish_reason": final.finish_reason,
        "timing": {k: round(float(v), 6) for k, v in (final.timing or {}).items()},
    }
    if turn.reasoning:
        data["reasoning"] = turn.reasoning
    if final.tool_calls:
        data["tool_calls"] = final.tool_calls
    if parsed is not _UNSET:
        data["parsed"] = parsed
    return data


def single_result(model: str, prompt: str, turn: Turn, options: RunOptions) -> dict[str, Any]:
    """The ``--json`` data of a finished single-shot run, local or distributed: with
    ``--json-schema`` it also carries ``parsed`` (None when ``--max-tokens`` cut the JSON)."""
    if options.response_format is None:
        return result_data(model, prompt, turn)
    import json

    try:
        parsed = json.loads(turn.text)
    except ValueError:
        parsed = None   # cut by --max-tokens: finish_reason says "length"
    return result_data(model, prompt, turn, parsed)
