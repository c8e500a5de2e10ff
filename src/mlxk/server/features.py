"""Which request features the server honours, and the translation to a ``GenerationRequest``.

Everything a client asks for is either honoured or refused with a 400 naming
the field; nothing is silently ignored. Extension point for the structured-output
track: ``check_response_format`` and ``check_tools`` are the only gates for
``response_format`` and ``tools``/``tool_choice``; when the engine honours them
these functions let them through (the values already travel on the
``GenerationRequest``).
"""

from __future__ import annotations

from typing import Any

from mlxk.cache.detect import template_supports_tools
from mlxk.engine.types import GenerationRequest, LoadedModel, SamplingParams
from mlxk.errors import ValidationError
from mlxk.server.schemas import MAX_STOP_STRINGS, ChatCompletionRequest, CompletionRequest

# json_object / json_schema are enforced by constrained decoding (engine/structured/plan.py),
# which also validates the schema itself (a 400 naming the problem).
SUPPORTED_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})


def _refuse(param: str, message: str) -> ValidationError:
    return ValidationError(message, param=param, code="unsupported_parameter")


def check_common(req: ChatCompletionRequest | CompletionRequest) -> None:
    if isinstance(req.stop, list) and len(req.stop) > MAX_STOP_STRINGS:
        raise _refuse("stop", f"at most {MAX_STOP_STRINGS} stop strings")
    if req.stream_options is not None and not req.stream:
        raise _refuse("stream_options", "stream_options is only allowed with stream: true")
    if req.logit_bias:
        for k, v in req.logit_bias.items():
            if not k.isdigit():
                raise _refuse("logit_bias", f"logit_bias keys must be token ids, got {k!r}")
            if not -100.0 <= v <= 100.0:
                raise _refuse("logit_bias", "logit_bias values must be between -100 and 100")


# The keys OpenAI defines for each response_format type; anything else is a 400 naming it.
RESPONSE_FORMAT_KEYS = {"text": frozenset({"type"}), "json_object": frozenset({"type"}),
                        "json_schema": frozenset({"type", "json_schema"})}
JSON_SCHEMA_KEYS = frozenset({"name", "description", "schema", "strict"})


def _unknown_keys(given: dict[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(given) - known)
    if extra:
        raise ValidationError(f"unknown key {where}.{extra[0]} (allowed: {', '.join(sorted(known))})",
                              param=f"{where}.{extra[0]}", code="unsupported_parameter")


def check_response_format(req: ChatCompletionRequest) -> None:
    fmt = req.response_format
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind not in SUPPORTED_RESPONSE_FORMATS:
        raise _refuse("response_format", f"response_format type {kind!r} is not supported")
    _unknown_keys(fmt, RESPONSE_FORMAT_KEYS[kind], "response_format")
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        _unknown_keys(fmt["json_schema"], JSON_SCHEMA_KEYS, "response_format.json_schema")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), (dict, bool)):
            raise ValidationError("response_format.json_schema must be an object with a "
                                  "'schema' (a JSON schema object)", param="response_format")


def supports_tools(lm: LoadedModel) -> bool:
    return template_supports_tools(getattr(lm.tokenizer, "chat_template", None))


def check_tools(req: ChatCompletionRequest, lm: LoadedModel) -> None:
    if req.tools:
        # A template without tool support gets the documented fallback system prompt
        # (engine/structured/tools/); only a model with no chat template at all cannot take tools.
        if not supports_tools(lm) and not lm.has_chat_template:
            raise _refuse("tools", "this model has no chat template, so it cannot take tools")
        from mlxk.engine.structured import tools as tool_spec

        tool_spec.resolve_tool_choice(req.tool_choice, tool_spec.normalize_tools(req.tools))
    elif req.tool_choice not in (None, "none"):
        raise _refuse("tool_choice", "tool_choice requires tools")
    # parallel_tool_calls without tools changes nothing (clients send their default): accepted.


IMAGE_PART_TYPES = frozenset({"image_url"})


def _content(content: Any, where: str) -> Any:
    """Message content for the engine: a string, or (with images) text and pending image parts
    (decoded by ``server.images.resolve`` once the model is known)."""
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        if p.type == "text" and p.text is not None:
            parts.append({"type": "text", "text": p.text})
        elif p.type in IMAGE_PART_TYPES:
            from mlxk.server import images

            parts.append(images.pending("url", images.openai_image_url(p.model_dump()),
                                        f"{where}.content[{j}]"))
        else:
            raise _refuse("messages", f"content part type {p.type!r} is not supported "
                                      "(text and image_url only)")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def chat_messages(req: ChatCompletionRequest) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(req.messages):
        msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role,
                               "content": _content(m.content, f"messages[{i}]")}
        for extra in ("name", "tool_calls", "tool_call_id"):
            value = getattr(m, extra)
            if value is not None:
                msg[extra] = value
        out.append(msg)
    return out


def sampling(req: ChatCompletionRequest | CompletionRequest) -> SamplingParams:
    return SamplingParams.given(temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                                min_p=req.min_p, repetition_penalty=req.repetition_penalty,
                                seed=req.seed)


def _stops(req: ChatCompletionRequest | CompletionRequest) -> tuple[str, ...]:
    stop = req.stop
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    return tuple(s for s in items if s)


def chat_request(req: ChatCompletionRequest) -> GenerationRequest:
    """The request for the engine; what needs the loaded model (tools against its template,
    logit_bias against its vocabulary) is checked by ``core`` once it is loaded."""
    check_common(req)
    check_response_format(req)
    if not req.tools and req.tool_choice not in (None, "none"):
        raise _refuse("tool_choice", "tool_choice requires tools")
    if req.top_logprobs is not None and not req.logprobs:
        raise _refuse("top_logprobs", "top_logprobs requires logprobs: true")
    return GenerationRequest(
        messages=chat_messages(req), sampling=sampling(req),
        max_tokens=req.max_completion_tokens or req.max_tokens, stop=_stops(req),
        tools=req.tools or None, tool_choice=req.tool_choice,
        response_format=req.response_format if (req.response_format or {}).get("type") != "text" else None,
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
        parallel_tool_calls=req.parallel_tool_calls is not False,
    )


def completion_prompts(prompt: Any) -> list[str | list[int]]:
    """OpenAI's prompt forms as a list of prompts: a string, a list of strings, a list of
    token ids, or a list of lists of token ids (``core`` checks the ids against the vocabulary)."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise ValidationError("prompt must not be empty", param="prompt")
    if isinstance(prompt[0], int):
        prompt = [prompt]
    out: list[str | list[int]] = []
    for p in prompt:
        if isinstance(p, list) and not p:
            raise ValidationError("a token-id prompt must not be empty", param="prompt")
        out.append(p)
    return out


def completion_requests(req: CompletionRequest) -> list[GenerationRequest]:
    """One ``GenerationRequest`` per prompt of a text completion."""
    check_common(req)
    if req.suffix:
        raise _refuse("suffix", "suffix (insertion) is not supported")
    if req.best_of is not None and req.best_of > 1:
        raise _refuse("best_of", "best_of > 1 is not supported")
    common = {"sampling": sampling(req), "max_tokens": req.max_tokens, "stop": _stops(req),
              "use_chat_template": False, "logprobs": req.logprobs}
    return [GenerationRequest(prompt=p, **common) if isinstance(p, str)  # type: ignore[arg-type]
            else GenerationRequest(prompt_ids=tuple(p), **common)  # type: ignore[arg-type]
            for p in completion_prompts(req.prompt)]


def check_bias(req: ChatCompletionRequest | CompletionRequest, lm: LoadedModel) -> None:
    vocab = (lm.config or {}).get("vocab_size")
    if req.logit_bias and vocab:
        bad = [k for k in req.logit_bias if int(k) >= int(vocab)]
        if bad:
            raise ValidationError(f"logit_bias token id {bad[0]} is outside the vocabulary",
                                  param="logit_bias")


def extra_processors(req: ChatCompletionRequest | CompletionRequest) -> list[Any]:
    """Logits processors for the OpenAI penalties and logit_bias (mlx-lm builds them)."""
    if not (req.presence_penalty or req.frequency_penalty or req.logit_bias):
        return []
    from mlx_lm.sample_utils import make_logits_processors

    bias = {int(k): float(v) for k, v in (req.logit_bias or {}).items()} or None
    return make_logits_processors(logit_bias=bias, presence_penalty=req.presence_penalty or None,
                                  frequency_penalty=req.frequency_penalty or None)
