"""Generation with images: ``prepare`` (prompt, pixels, limits) and ``stream`` (Chunks).

A request's messages carry images as content parts ``{"type": "image", "image":
<PIL.Image>}`` (decoded and checked at the edge: ``run --image``, the server
dialects). ``prepare`` renders the chat with the model's template (each image
part becomes the template's image placeholder), lets mlx-vlm's processor expand
the placeholders into image tokens and compute the pixel values, and checks the
limits before any model work: the number of images, and the prompt length
*including* the image tokens against the context length. ``stream`` then runs
mlx-vlm's token loop and feeds every token through the text engine's
``SequenceDecoder``, so the output events are exactly the text engine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlxk.engine import sampling
from mlxk.engine.generate import Prepared, default_max_tokens, run_steps
from mlxk.engine.prompt import opens_reasoning, plain_prompt
from mlxk.engine.text.decoder import SequenceDecoder
from mlxk.engine.types import Chunk, GenerationRequest
from mlxk.errors import ValidationError


@dataclass
class VisionPrepared(Prepared):
    """``Prepared`` plus the model inputs mlx-vlm's processor produced."""

    input_ids: Any = None
    pixel_values: Any = None
    mask: Any = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    n_images: int = 0


def is_image_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "image"


def split_images(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Messages for the chat template (image parts become bare placeholders) and the images."""
    images: list[Any] = []
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if is_image_part(p):
                    images.append(p["image"])
                    parts.append({"type": "image"})
                elif isinstance(p, dict) and p.get("type") == "text":
                    parts.append({"type": "text", "text": p.get("text") or ""})
                else:
                    raise ValidationError(f"content part {p!r:.60} is not text or an image",
                                          param="messages")
            m = {**m, "content": parts}
        out.append(m)
    return out, images


def count_images(messages: list[dict[str, Any]] | None) -> int:
    return sum(1 for m in messages or [] if isinstance(m.get("content"), list)
               for p in m["content"] if is_image_part(p))


def _render(lm: Any, request: GenerationRequest) -> tuple[str, list[Any]]:
    if request.messages is None:
        if request.prompt is None:
            raise ValidationError("a request needs messages or a prompt")
        return request.prompt, []
    if not request.messages:
        raise ValidationError("messages must not be empty", param="messages")
    messages, images = split_images(request.messages)
    if not (request.use_chat_template and lm.has_chat_template):
        if images:
            raise ValidationError("images need the model's chat template (it places the image "
                                  "tokens); do not disable it", param="messages")
        flat = [{**m, "content": "".join(p.get("text", "") for p in m["content"])}
                if isinstance(m.get("content"), list) else m for m in messages]
        return plain_prompt(flat), []
    proc = lm.processor
    owner = proc if getattr(proc, "chat_template", None) else getattr(proc, "tokenizer", proc)
    text = owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text, images


def _check_request(lm: Any, request: GenerationRequest) -> None:
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        raise ValidationError("response_format is not supported with vision models yet",
                              param="response_format", code="unsupported_parameter")
    if request.tools:
        raise ValidationError("tools are not supported with vision models yet", param="tools",
                              code="unsupported_parameter")
    n = count_images(request.messages)
    if n > lm.max_images:
        raise ValidationError(f"{n} images in one request; the limit is {lm.max_images}",
                              param="messages", code="too_many_images")


def prepare(lm: Any, request: GenerationRequest) -> VisionPrepared:
    """Everything the token loop needs; raises ValidationError before any model work."""
    from mlx_vlm.utils import prepare_inputs, should_add_special_tokens

    _check_request(lm, request)
    text, images = _render(lm, request)
    param = "messages" if request.messages is not None else "prompt"
    model_type = lm.model.config.model_type
    try:
        inputs = prepare_inputs(lm.processor, images=images or None, prompts=text,
                                image_token_index=getattr(lm.model.config, "image_token_index", None),
                                add_special_tokens=should_add_special_tokens(model_type, lm.processor))
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"the model's processor refused the input: {exc}", param=param) from exc
    input_ids = inputs["input_ids"]
    tokens = [int(t) for t in input_ids.reshape(-1).tolist()]
    if not tokens:
        raise ValidationError("the prompt is empty", param=param)
    ctx = int(lm.context_length or 0)
    if ctx and len(tokens) >= ctx:
        raise ValidationError(f"the prompt is {len(tokens)} tokens (images included); this "
                              f"model's context length is {ctx}", param=param,
                              code="context_length_exceeded")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise ValidationError("max_tokens must be >= 1", param="max_tokens")
    decoder = SequenceDecoder(
        lm.tokenizer, lm.eos_token_ids, stop=request.stop, prompt_tokens=len(tokens),
        reasoning_format=lm.reasoning_format, start_in_reasoning=opens_reasoning(lm, text),
        hidden_token_ids=lm.hidden_token_ids, marker_token_ids=lm.marker_token_ids,
    )
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "pixel_values", "attention_mask")}
    return VisionPrepared(
        prompt_tokens=tokens, sampler=sampling.make_sampler(request.sampling),
        logits_processors=sampling.make_logits_processors(request.sampling),
        max_tokens=int(request.max_tokens or default_max_tokens(lm, len(tokens))),
        decoder=decoder, request=request, prompt_text=text, input_ids=input_ids,
        pixel_values=inputs.get("pixel_values"), mask=inputs.get("attention_mask"),
        model_kwargs=extra, n_images=len(images),
    )


def token_steps(lm: Any, p: VisionPrepared, sampler: Any = None,
                processors: list[Any] | None = None) -> Any:
    """mlx-vlm's token loop for one prepared request: yields ``(token, logprobs)``.
    ``sampler``/``processors`` replace the request's own (the server's seeded sampler,
    the OpenAI penalties)."""
    from mlx_vlm.generate import generate_step
    from mlx_vlm.models import cache as vlm_cache

    processors = list(p.logits_processors or ()) if processors is None else processors
    return generate_step(p.input_ids, lm.model, p.pixel_values, p.mask, max_tokens=p.max_tokens,
                         sampler=sampler or p.sampler, logits_processors=processors or None,
                         prompt_cache=vlm_cache.make_prompt_cache(lm.model.language_model),
                         **p.model_kwargs)


def stream(lm: Any, request: GenerationRequest, prepared: VisionPrepared | None = None) -> Iterator[Chunk]:
    """Generate one sequence; the same chunks as ``mlxk.engine.generate.stream``."""
    from mlx_vlm.generate import generation_stream

    p = prepared or prepare(lm, request)
    yield from run_steps(lm, p, lambda: (t for t, _ in token_steps(lm, p)), generation_stream)
