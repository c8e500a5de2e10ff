"""`run`: resolve and check a model, load it, and talk to it (single-shot or a chat session)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlxk.cache import runnable
from mlxk.cache.resolve import ResolvedModel
from mlxk.engine.types import CacheOptions, Chunk, GenerationRequest, LoadedModel, SamplingParams

if TYPE_CHECKING:
    from mlxk.engine.speculative import Draft, Lookup


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


def load(ref: str | ResolvedModel, cache_options: CacheOptions | None = None,
         adapter_path: str | None = None) -> LoadedModel:
    """``LoadedModel`` for ``ref`` (a reference, resolved and checked first, or the result of
    ``resolve_runnable``), with its KV-cache options and an optional LoRA adapter, from the
    engine that runs it (``mlxk.engine.choose``: vision models on mlx-vlm when the extra is
    installed)."""
    from mlxk.engine.choose import load as load_model

    resolved = resolve_runnable(ref) if isinstance(ref, str) else ref
    _refuse_vision_options(resolved.path, cache_options)
    if adapter_path is not None:
        from mlxk.engine.adapters import read_config

        read_config(adapter_path)   # a bad folder fails before the weights load
    lm = load_model(resolved.path, name=resolved.display, adapter_path=adapter_path)
    lm.cache_options = cache_options
    return lm


def _refuse_vision_options(path: Any, cache_options: CacheOptions | None) -> None:
    """The vision engine runs mlx-vlm's own token loop: no KV-cache options there yet."""
    from mlxk.engine.choose import uses_vision_engine
    from mlxk.errors import ValidationError

    if cache_options is not None and cache_options.active and uses_vision_engine(path):
        raise ValidationError("--max-kv-size and --kv-bits are not supported with vision models yet")


def load_draft(lm: LoadedModel, ref: str, num_draft: int,
               cache_options: CacheOptions | None) -> Draft:
    """The draft model for speculative decoding, checked against ``lm``."""
    from mlxk.engine import speculative
    from mlxk.errors import ValidationError

    if getattr(lm, "vision", False):
        raise ValidationError("--draft-model is not supported with vision models yet")
    if not 1 <= num_draft <= 16:
        raise ValidationError("--num-draft-tokens must be between 1 and 16")
    if cache_options is not None and cache_options.active:
        raise ValidationError("--draft-model does not combine with --max-kv-size or --kv-bits yet")
    draft = load(ref)
    speculative.check_vocab(lm, draft)
    return speculative.Draft(lm=draft, num_draft=num_draft)


def prompt_lookup(lm: LoadedModel, num_draft: int, cache_options: CacheOptions | None) -> Lookup:
    """``--prompt-lookup N``: drafts from the context, verified by ``lm`` (no second model)."""
    from mlxk.engine import speculative
    from mlxk.engine.prompt_lookup import MAX_DRAFT
    from mlxk.errors import ValidationError

    if getattr(lm, "vision", False):
        raise ValidationError("--prompt-lookup is not supported with vision models yet")
    if not 1 <= num_draft <= MAX_DRAFT:
        raise ValidationError(f"--prompt-lookup must be between 1 and {MAX_DRAFT}")
    if cache_options is not None and cache_options.active:
        raise ValidationError("--prompt-lookup does not combine with --max-kv-size or --kv-bits yet")
    return speculative.Lookup(num_draft=num_draft)


def user_message(text: str, images: list[Any] | tuple[Any, ...] = ()) -> dict[str, Any]:
    """A user turn; images (decoded ``PIL.Image``s) come first, then the text."""
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "image", "image": img} for img in images]
    parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


def read_images(ref: str | ResolvedModel, paths: list[str]) -> list[Any]:
    """Decode ``run --image`` files before loading anything; refuse what the model cannot take
    (a text-only model, a vision model without the extra, too many images, bad files)."""
    if not paths:
        return []
    resolved = resolve_runnable(ref) if isinstance(ref, str) else ref
    return decode_images(resolved.display, resolved.path, paths)


def decode_images(name: str, path: Any, paths: list[str]) -> list[Any]:
    from mlxk import config
    from mlxk.engine.choose import has_vision_config, refuse_images, vision_available
    from mlxk.engine.vision.images import from_path
    from mlxk.errors import ValidationError

    if not (has_vision_config(path) and vision_available()):
        refuse_images(name, path, len(paths))
    if len(paths) > config.MAX_IMAGES_PER_REQUEST:
        raise ValidationError(f"{len(paths)} images; the limit is {config.MAX_IMAGES_PER_REQUEST} "
                              f"per request", param="image", code="too_many_images")
    return [from_path(p) for p in paths]


def single_request(text: str, options: RunOptions, images: list[Any] | tuple[Any, ...] = ()
                   ) -> GenerationRequest:
    messages: list[dict[str, Any]] = []
    if options.system:
        messages.append({"role": "system", "content": options.system})
    messages.append(user_message(text, images))
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

    def ask(self, text: str, turn: Turn | None = None, images: list[Any] | tuple[Any, ...] = ()
            ) -> Iterator[Chunk]:
        """Stream the answer to ``text`` (with ``images`` attached); the exchange joins the
        history when the answer ends, also when it is cut short (Ctrl-C keeps what was said)."""
        from mlxk.engine.choose import stream
        from mlxk.engine.generate import INTERACTIVE_PREFILL_STEP

        turn = turn if turn is not None else Turn()
        self.history.append(user_message(text, images))
        request = replace(single_request(text, self.options), messages=self.messages())
        try:
            for chunk in stream(self.lm, request, prefill_step=INTERACTIVE_PREFILL_STEP):
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


def result_data(model: str, prompt: str, turn: Turn, parsed: Any = _UNSET,
                images: list[str] | None = None) -> dict[str, Any]:
    """The ``--json`` data of a single-shot run."""
    final = turn.final or Chunk(finish_reason="stop")
    data: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        **({"images": list(images)} if images else {}),
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


def single_result(model: str, prompt: str, turn: Turn, options: RunOptions,
                  images: list[str] | None = None) -> dict[str, Any]:
    """The ``--json`` data of a finished single-shot run, local or distributed: with
    ``--json-schema`` it also carries ``parsed`` (None when ``--max-tokens`` cut the JSON),
    with ``--image`` the image files."""
    if options.response_format is None:
        return result_data(model, prompt, turn, images=images)
    import json

    try:
        parsed = json.loads(turn.text)
    except ValueError:
        parsed = None   # cut by --max-tokens: finish_reason says "length"
    return result_data(model, prompt, turn, parsed, images=images)
