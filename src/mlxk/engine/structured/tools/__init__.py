"""OpenAI tools for chat models: validation, prompt rendering and tool-call parsing. Pure: no mlx.

Formats (``detect_format`` picks one from the chat template):

* ``hermes`` (Hermes, Qwen 2/2.5/3, SmolLM3, many others, and our fallback)::

      <tool_call>
      {"name": "get_weather", "arguments": {"city": "Paris"}}
      </tool_call>

* ``llama3`` (Llama 3.1+): the answer is a bare JSON object ``{"name": ..., "parameters":
  ...}`` (or ``"arguments"``), optionally after ``<|python_tag|>``; several separated by ``;``.
* ``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``.

Fallback: when the chat template does not reference ``tools``, the tools are described in
a system prompt (:func:`fallback_system_prompt`) that asks for the ``hermes`` format
above; assistant ``tool_calls`` are rendered back in that format and ``role: tool``
results become user turns wrapped in ``<tool_response>...</tool_response>``.

``tool_choice``: ``none`` renders no tools and parses nothing; ``auto`` renders them and
parses whatever calls the model makes; ``required`` and a named function are enforced by
a grammar (:func:`call_grammar_lark`) so the arguments always validate.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlxk.errors import ValidationError

HERMES, LLAMA3, MISTRAL = "hermes", "llama3", "mistral"
FORMATS = (HERMES, LLAMA3, MISTRAL)


# ---------------------------------------------------------------- request side


@dataclass(frozen=True)
class ToolChoice:
    mode: str                     # none | auto | required | named
    name: str | None = None       # for mode == named


def normalize_tools(tools: Any) -> list[dict[str, Any]]:
    """Validate OpenAI ``tools``; returns ``[{"type": "function", "function": {...}}]``."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ValidationError("tools must be a list", param="tools")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise ValidationError(f"tools[{i}]: only tools of type 'function' are supported",
                                  param="tools")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ValidationError(f"tools[{i}].function.name is required", param="tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise ValidationError(f"tools[{i}].function.parameters must be a JSON schema object",
                                  param="tools")
        if fn["name"] in seen:
            raise ValidationError(f"duplicate tool name {fn['name']!r}", param="tools")
        seen.add(fn["name"])
        clean = {"name": fn["name"], "parameters": params}
        if fn.get("description"):
            clean["description"] = str(fn["description"])
        out.append({"type": "function", "function": clean})
    return out


def resolve_tool_choice(tool_choice: Any, tools: list[dict[str, Any]]) -> ToolChoice:
    """Map OpenAI ``tool_choice`` (+ the tools) to a :class:`ToolChoice`; 400 on nonsense."""
    names = [t["function"]["name"] for t in tools]
    if tool_choice is None:
        return ToolChoice("auto" if tools else "none")
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise ValidationError(f"tool_choice must be 'none', 'auto', 'required' or a "
                                  f"function, not {tool_choice!r}", param="tool_choice")
        if tool_choice != "none" and not tools:
            raise ValidationError(f"tool_choice {tool_choice!r} needs tools", param="tool_choice")
        return ToolChoice(tool_choice if tools else "none")
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function") if tool_choice.get("type", "function") == "function" \
            else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise ValidationError("tool_choice must name a function: "
                                  '{"type": "function", "function": {"name": ...}}',
                                  param="tool_choice")
        if name not in names:
            raise ValidationError(f"tool_choice names unknown function {name!r} "
                                  f"(tools: {', '.join(names) or 'none'})", param="tool_choice")
        return ToolChoice("named", name)
    raise ValidationError("tool_choice must be a string or an object", param="tool_choice")


def template_supports_tools(chat_template: str | None) -> bool:
    """True when the Jinja chat template renders the ``tools`` variable."""
    return bool(chat_template) and "tools" in chat_template


def detect_format(chat_template: str | None) -> str:
    t = chat_template or ""
    if "[TOOL_CALLS]" in t:
        return MISTRAL
    if "<tool_call>" in t:
        return HERMES
    if "<|python_tag|>" in t or ("<|start_header_id|>" in t and "tools" in t):
        return LLAMA3
    return HERMES


def fallback_system_prompt(tools: list[dict[str, Any]], choice: ToolChoice) -> str:
    """The system text that describes ``tools`` to a model whose template cannot.

    Kept short (prompt tokens cost time on small machines): one compact JSON line per
    function (only the named one for a named ``tool_choice``), then the call format.
    """
    if choice.mode == "named":
        tools = [t for t in tools if t["function"]["name"] == choice.name]
    specs = "\n".join(json.dumps(_spec(t["function"]), ensure_ascii=False,
                                  separators=(",", ":")) for t in tools)
    if choice.mode == "named":
        rule = f"Call {choice.name} now."
    elif choice.mode == "required":
        rule = "Call one of them now."
    else:
        rule = "Call one only if it helps; otherwise answer normally."
    return (
        f"Functions:\n<tools>\n{specs}\n</tools>\n"
        'To call one, reply only with <tool_call>\n{"name": NAME, "arguments": ARGS}\n'
        "</tool_call>. Results come back in <tool_response></tool_response>. " + rule
    )


def _spec(fn: dict[str, Any]) -> dict[str, Any]:
    out = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["parameters"] = fn.get("parameters", {})
    return out


def _arguments_obj(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return args
    return args


def _render_call_text(call: dict[str, Any]) -> str:
    fn = call.get("function") or {}
    body = {"name": fn.get("name"), "arguments": _arguments_obj(fn.get("arguments", {}))}
    return "<tool_call>\n" + json.dumps(body, ensure_ascii=False) + "\n</tool_call>"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def messages_for_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for a template that handles tools: ``arguments`` become objects (HF style)."""
    out = []
    for msg in messages:
        msg = copy.deepcopy(msg)
        for call in msg.get("tool_calls") or []:
            fn = call.get("function")
            if isinstance(fn, dict) and "arguments" in fn:
                fn["arguments"] = _arguments_obj(fn["arguments"])
        if msg.get("role") == "assistant" and msg.get("content") is None:
            msg["content"] = ""
        out.append(msg)
    return out


def messages_for_fallback(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                          choice: ToolChoice) -> list[dict[str, Any]]:
    """Messages for a template without tool support (tools described in the system turn)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        text = _content_text(msg.get("content"))
        if role == "assistant" and msg.get("tool_calls"):
            calls = "\n".join(_render_call_text(c) for c in msg["tool_calls"])
            out.append({"role": "assistant", "content": (text + "\n" if text else "") + calls})
        elif role == "tool":
            block = f"<tool_response>\n{text}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1].get("_tool"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool": True})
        else:
            out.append({"role": role, "content": text})
    for msg in out:
        msg.pop("_tool", None)
    if tools and choice.mode != "none":
        prompt = fallback_system_prompt(tools, choice)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + prompt}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


def strip_tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For ``tool_choice: none`` on a template without tools: history as plain text."""
    return messages_for_fallback(messages, [], ToolChoice("none"))


# ---------------------------------------------------------------- constraint


def call_schema(tools: list[dict[str, Any]], choice: ToolChoice,
                args_key: str = "arguments") -> dict[str, Any]:
    """JSON schema of one call object ``{"name": ..., args_key: {...}}`` allowed by ``choice``."""
    alts = []
    for tool in tools:
        fn = tool["function"]
        if choice.mode == "named" and fn["name"] != choice.name:
            continue
        alts.append({
            "type": "object",
            "properties": {"name": {"const": fn["name"]}, args_key: fn["parameters"]},
            "required": ["name", args_key],
            "additionalProperties": False,
        })
    return alts[0] if len(alts) == 1 else {"anyOf": alts}


def call_grammar_lark(fmt: str, tools: list[dict[str, Any]], choice: ToolChoice,
                      parallel: bool, json_lark: Any) -> str:
    """A Lark grammar forcing one (or, with ``parallel``, several) calls in format ``fmt``.

    ``json_lark(schema) -> str`` renders an inline ``%json`` rule (see constrained.py).
    """
    if fmt == LLAMA3:
        call = json_lark(call_schema(tools, choice, "parameters"))
        more = '(";" call)*' if parallel else ""
        return f"start: call {more}\ncall: {call}\n"
    if fmt == MISTRAL:
        call = json_lark(call_schema(tools, choice))
        more = '(", " call)*' if parallel else ""
        return f'start: "[TOOL_CALLS][" call {more} "]"\ncall: {call}\n'
    call = json_lark(call_schema(tools, choice))
    more = '("\\n" one)*' if parallel else ""
    return f'start: one {more}\none: "<tool_call>\\n" call "\\n</tool_call>"\ncall: {call}\n'


# ---------------------------------------------------------------- parsing


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def scan_json_end(text: str, start: int) -> int | None:
    """Index just past the JSON object/array opening at ``text[start]``; None if incomplete."""
    depth = 0
    in_str = esc = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _as_call(obj: Any) -> dict[str, Any] | None:
    """``{"name", "arguments"|"parameters"}`` -> ``{"name", "arguments": <json str>}``."""
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict) and "name" not in obj:
        obj = obj["function"]
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        parsed = _arguments_obj(args)
        args_text = args if not isinstance(parsed, str) else json.dumps(args)
    else:
        args_text = json.dumps(args, ensure_ascii=False)
    return {"name": obj["name"], "arguments": args_text}


def _held_prefix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


@dataclass
class ParseResult:
    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI tool_calls, with index


class ToolCallParser:
    """Incremental parser: ``feed(text)`` any split of the output, then ``finish()``.

    Returns content text outside calls and completed calls in OpenAI shape
    ``{"index", "id", "type": "function", "function": {"name", "arguments"}}``.
    With ``parallel=False`` only the first call is kept.
    """

    def __init__(self, fmt: str = HERMES, parallel: bool = True) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown tool-call format {fmt!r}")
        self.fmt = fmt
        self.parallel = parallel
        self.calls: list[dict[str, Any]] = []
        self.done = False          # parallel=False and one call is complete
        self._buf = ""
        self._mode = "start"       # start | text | call | json
        self._ws = ""              # whitespace held back between/after calls

    # -- helpers
    def _emit_call(self, call: dict[str, Any], res: ParseResult) -> None:
        if self.done:
            return
        item = {"index": len(self.calls), "id": new_call_id(), "type": "function",
                "function": call}
        self.calls.append(item)
        res.calls.append(item)
        self._ws = ""
        if not self.parallel:
            self.done = True

    def _emit_text(self, text: str, res: ParseResult) -> None:
        if not text or self.done:
            return
        if self.calls and not text.strip():
            self._ws += text
            return
        res.text += self._ws + text
        self._ws = ""

    @property
    def _open(self) -> str:
        return {MISTRAL: "[TOOL_CALLS]", LLAMA3: "<|python_tag|>"}.get(self.fmt, "<tool_call>")

    # -- main loop
    def feed(self, text: str) -> ParseResult:
        res = ParseResult()
        self._buf += text
        while self._buf and not self.done:
            if not self._step(res, final=False):
                break
        if self.done:
            self._buf = ""
        return res

    def finish(self) -> ParseResult:
        res = ParseResult()
        while self._buf and not self.done:
            if not self._step(res, final=True):
                break
        if self._buf and not self.done:
            self._emit_text(self._buf, res)
        self._buf = ""
        if not self.calls and self._ws:
            res.text += self._ws
        self._ws = ""
        return res

    def _step(self, res: ParseResult, final: bool) -> bool:
        """Consume from the buffer; False when more input is needed."""
        buf = self._buf
        if self._mode == "start":
            stripped = buf.lstrip()
            if not stripped:
                return False if not final else self._to_text()
            if self.fmt in (LLAMA3, MISTRAL):
                tag = "<|python_tag|>" if self.fmt == LLAMA3 else "[TOOL_CALLS]"
                if tag.startswith(stripped) and not final:
                    return False
                if stripped.startswith(tag):
                    self._buf = stripped[len(tag):]
                    self._mode = "json"
                    return True
                if stripped[0] in ("{[" if self.fmt == MISTRAL else "{"):
                    self._buf = stripped
                    self._mode = "json"
                    return True
            self._mode = "text"
            return True
        if self._mode == "text":
            marker = self._open
            pos = buf.find(marker)
            if pos >= 0:
                self._emit_text(buf[:pos], res)
                self._buf = buf[pos + len(marker):]
                self._mode = "call" if self.fmt == HERMES else "json"
                return True
            keep = 0 if final else _held_prefix(buf, marker)
            self._emit_text(buf[: len(buf) - keep], res)
            self._buf = buf[len(buf) - keep:]
            return False
        if self._mode == "call":  # hermes body up to </tool_call>
            end = buf.find("</tool_call>")
            if end < 0 and not final:
                return False
            body = buf if end < 0 else buf[:end]
            call = self._parse_json_call(body.strip())
            if call is None:
                self._emit_text("<tool_call>" + (buf if end < 0 else buf[: end + 12]), res)
            else:
                self._emit_call(call, res)
            self._buf = "" if end < 0 else buf[end + 12:]
            self._mode = "text"
            return True
        # json mode: llama3 objects / mistral arrays, separated by ; , whitespace
        i = 0
        while i < len(buf) and (buf[i].isspace() or buf[i] in ";,"):
            i += 1
        if i == len(buf):
            return False if not final else self._drop(i)
        if buf[i] not in "{[":
            self._buf = buf[i:]
            self._mode = "text"
            return True
        end = scan_json_end(buf, i)
        if end is None:
            if final:
                self._emit_text(buf, res)
                self._buf = ""
            return False
        try:
            value = json.loads(buf[i:end])
        except json.JSONDecodeError:
            value = None
        items = value if isinstance(value, list) else [value]
        calls = [_as_call(v) for v in items]
        if value is None or not calls or any(c is None for c in calls):
            self._emit_text(buf[:end], res)   # not a call after all: plain content
            self._mode = "text"
        else:
            for c in calls:
                self._emit_call(c, res)  # type: ignore[arg-type]
        self._buf = buf[end:]
        return True

    def _to_text(self) -> bool:
        self._mode = "text"
        return True

    def _drop(self, n: int) -> bool:
        self._ws += self._buf[:n]
        self._buf = self._buf[n:]
        return False

    @staticmethod
    def _parse_json_call(body: str) -> dict[str, Any] | None:
        try:
            return _as_call(json.loads(body))
        except json.JSONDecodeError:
            return None


def parse_tool_calls(text: str, fmt: str = HERMES,
                     parallel: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse a whole output at once: (content, tool_calls)."""
    p = ToolCallParser(fmt, parallel)
    a = p.feed(text)
    b = p.finish()
    return a.text + b.text, a.calls + b.calls
