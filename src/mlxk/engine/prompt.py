"""The prompt of a request: chat template (with system, tools) or the raw text."""

from __future__ import annotations

from typing import Any

from mlxk.cache.detect import template_supports_tools
from mlxk.engine.text.reasoning import THINK_OPEN
from mlxk.engine.types import GenerationRequest, LoadedModel, message_text
from mlxk.errors import ValidationError


def has_thinking_switch(template: Any) -> bool:
    """The template turns reasoning on and off with ``enable_thinking`` (Qwen3, SmolLM3 ...)."""
    return isinstance(template, str) and "enable_thinking" in template


def plain_prompt(messages: list[dict[str, Any]]) -> str:
    """A chat rendered without a template (base models, ``--no-chat-template``)."""
    if len(messages) == 1 or (len(messages) == 2 and messages[0].get("role") == "system"):
        return "\n\n".join(message_text(m.get("content")) for m in messages)
    lines = [f"{str(m.get('role', 'user')).capitalize()}: {message_text(m.get('content'))}"
             for m in messages]
    return "\n".join([*lines, "Assistant:"])


def render(lm: LoadedModel, request: GenerationRequest) -> tuple[str, bool]:
    """``(prompt_text, templated)``: the text the model sees."""
    tok = lm.tokenizer
    if request.messages is None:
        if request.prompt is None:
            raise ValidationError("a request needs messages or a prompt")
        return request.prompt, False
    if not request.messages:
        raise ValidationError("messages must not be empty", param="messages")
    if request.use_chat_template and lm.has_chat_template:
        kwargs: dict[str, Any] = {}
        if request.tools and template_supports_tools(getattr(tok, "chat_template", None)):
            kwargs["tools"] = request.tools
        if request.reasoning is not None and has_thinking_switch(getattr(tok, "chat_template", None)):
            kwargs["enable_thinking"] = request.reasoning
        text = tok.apply_chat_template(request.messages, add_generation_prompt=True,
                                       tokenize=False, **kwargs)
        return text, True
    return plain_prompt(request.messages), False


def encode_text(lm: LoadedModel, text: str, templated: bool) -> list[int]:
    tok = lm.tokenizer
    if templated:
        # Templates write their own BOS; do not add another.
        return list(tok.encode(text, add_special_tokens=False))
    bos = getattr(tok, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tok.encode(text, add_special_tokens=add))


def ends_in_open_think(prompt_text: str) -> bool:
    """The rendered prompt ends inside an opened ``<think>`` block (the one textual rule)."""
    return prompt_text.rstrip().endswith(THINK_OPEN)


def opens_reasoning(lm: LoadedModel, prompt_text: str) -> bool:
    """The template pre-opened a ``<think>`` block (DeepSeek-R1, Qwen3 …)."""
    return lm.reasoning_format == "think" and ends_in_open_think(prompt_text)
