"""Helpers every translator uses: sampling defaults, tool validation, JSON arguments, SSE framing."""

from __future__ import annotations

import json
from typing import Any

from mlxk.engine.structured import tools as tool_spec
from mlxk.engine.types import SamplingParams
from mlxk.errors import ValidationError
from mlxk.server.schemas import MAX_STOP_STRINGS


def refuse(param: str, message: str) -> ValidationError:
    return ValidationError(message, param=param, code="unsupported_parameter")


def sampling(temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
             min_p: float | None = None, repetition_penalty: float | None = None,
             seed: int | None = None) -> SamplingParams:
    """The server's defaults (the same for every dialect) overridden by what the client sent."""
    d = SamplingParams()
    return SamplingParams(
        temperature=d.temperature if temperature is None else float(temperature),
        top_p=d.top_p if top_p is None else float(top_p),
        top_k=d.top_k if top_k is None else int(top_k),
        min_p=d.min_p if min_p is None else float(min_p),
        repetition_penalty=d.repetition_penalty if repetition_penalty is None
        else float(repetition_penalty),
        seed=seed)


def stops(values: Any, param: str) -> tuple[str, ...]:
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else values
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ValidationError(f"{param} must be a string or a list of strings", param=param)
    if len(items) > MAX_STOP_STRINGS:
        raise refuse(param, f"at most {MAX_STOP_STRINGS} stop strings")
    return tuple(s for s in items if s)


def function_tool(name: Any, description: Any, parameters: Any, param: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{param}: every tool needs a name", param=param)
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise ValidationError(f"{param}: the schema of tool {name!r} must be a JSON object",
                              param=param)
    fn: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        fn["description"] = str(description)
    return {"type": "function", "function": fn}


def checked_tools(tools: list[dict[str, Any]], choice: Any, param: str) -> list[dict[str, Any]]:
    """Validate OpenAI-shaped tools and the choice between them (engine rules), naming ``param``."""
    try:
        tool_spec.resolve_tool_choice(choice, tool_spec.normalize_tools(tools))
    except ValidationError as exc:
        raise ValidationError(exc.message, param=param) from exc
    return tools


def arguments_obj(arguments: str) -> Any:
    """A tool call's JSON argument string as an object (the text itself if it is not JSON)."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return arguments


def arguments_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def named_event(name: str, obj: Any) -> bytes:
    """One SSE event with an ``event:`` name (Anthropic, OpenAI Responses)."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def text_of(content: Any, param: str, kinds: tuple[str, ...] = ("text",)) -> str:
    """Text of a string or a list of text parts; other part types are a 400 naming the type."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ValidationError(f"{param} must be a string or a list of content parts", param=param)
    out = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds or not isinstance(part.get("text"), str):
            raise refuse(param, f"content part type {kind!r} is not supported (text only)")
        out.append(part["text"])
    return "".join(out)
