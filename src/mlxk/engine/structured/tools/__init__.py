"""OpenAI tools for chat models: validation, prompt rendering and tool-call parsing. Pure: no mlx.

Formats: one module each (``hermes.py``, ``llama3.py``, ``mistral.py``, see ``formats.py``);
``detect_format`` picks one from the chat template, in ``FORMAT_ORDER``.

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
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlxk.cache.detect import template_supports_tools as template_supports_tools
from mlxk.engine.structured import custom
from mlxk.engine.structured.tools import hermes, llama3, mistral
from mlxk.engine.structured.tools.formats import ToolFormat
from mlxk.engine.text.reasoning import held_suffix
from mlxk.engine.types import message_text
from mlxk.errors import ValidationError

# Detection order: the first format whose marks the chat template shows wins; hermes otherwise.
FORMAT_ORDER: tuple[ToolFormat, ...] = (mistral.FORMAT, hermes.FORMAT, llama3.FORMAT)
_BY_NAME = {f.name: f for f in FORMAT_ORDER}
HERMES, LLAMA3, MISTRAL = hermes.FORMAT.name, llama3.FORMAT.name, mistral.FORMAT.name
FORMATS = tuple(_BY_NAME)


def format_of(name: str) -> ToolFormat:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown tool-call format {name!r}") from None


def format_for_tokenizer(tool_call_start: str | None) -> str | None:
    """The format whose calls open with mlx-lm's ``tool_call_start`` marker, if any."""
    return next((f.name for f in FORMAT_ORDER if f.tokenizer_start == tool_call_start), None)


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


def detect_format(chat_template: str | None) -> str:
    t = chat_template or ""
    return next((f.name for f in FORMAT_ORDER if f.in_template(t)), HERMES)


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
        text = message_text(msg.get("content"))
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


def call_alternatives(fmt: str, tools: list[dict[str, Any]], choice: ToolChoice, json_lark: Any,
                      raw: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    """What one call of format ``fmt`` may be: (the ``call`` rule's body, extra Lark rules,
    ``{subgrammar name: Lark grammar}``).

    ``json_lark(schema) -> str`` renders an inline ``%json`` rule (see constrained.py).
    ``raw``: ``{tool name: Lark grammar}`` of custom tools whose input is written raw
    (``custom.py``); then every tool gets a rule of its own.
    """
    f = format_of(fmt)
    allowed = [t for t in tools if choice.mode != "named" or t["function"]["name"] == choice.name]
    raw = {n: g for n, g in (raw or {}).items()
           if any(t["function"]["name"] == n for t in allowed)}
    if raw and f.close_tag is None:
        raise ValidationError(f"custom tool {next(iter(raw))!r} has a Lark grammar, but this model "
                              f"writes tool calls as bare JSON ({f.name}), which cannot end raw "
                              "text; use a regex grammar", param="tools")
    if not raw:
        return json_lark(call_schema(allowed, ToolChoice("required"), f.args_key)), "", {}
    plain = {t["function"]["name"]: json_lark(t["function"]["parameters"])
             for t in allowed if t["function"]["name"] not in raw}
    rule_names, rules, subs = custom.call_rules(plain, raw, f.args_key)
    return " | ".join(rule_names), rules, subs


def call_grammar_lark(fmt: str, tools: list[dict[str, Any]], choice: ToolChoice,
                      parallel: bool, json_lark: Any,
                      raw: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """A Lark grammar forcing one (or, with ``parallel``, several) calls in format ``fmt``,
    and the subgrammars it references (see :func:`call_alternatives`)."""
    call, rules, subs = call_alternatives(fmt, tools, choice, json_lark, raw)
    return format_of(fmt).grammar(call, parallel) + rules, subs


def auto_grammar_lark(fmt: str, tools: list[dict[str, Any]], json_lark: Any,
                      raw: dict[str, str] | None = None) -> tuple[str, dict[str, str]] | None:
    """``tool_choice: auto`` with a grammar to keep: free text with any number of calls, each
    call constrained like a forced one. Only for formats that wrap calls in tags (``hermes``):
    the text before a call ends lazily at the open tag, the text after the last call never
    holds one. None for other formats (auto stays unconstrained there)."""
    f = format_of(fmt)
    if f.close_tag is None:
        return None
    call, rules, subs = call_alternatives(fmt, tools, ToolChoice("required"), json_lark, raw)
    # A wrapped call sits on its own line between the tags (hermes.py).
    return ("start: auto_call* auto_end\n"
            "auto_end: AUTO_TEXT\n"
            f"AUTO_TEXT: /(?s:.*)/ & ~/(?s:.*){re.escape(f.open_tag)}(?s:.*)/\n"
            f"auto_head[lazy]: /(?s:.*)/ {json.dumps(f.open_tag)}\n"
            f'auto_call: auto_head "\\n" call {json.dumps(chr(10) + f.close_tag)}\n'
            f"call: {call}\n" + rules), subs


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


@dataclass
class ParseResult:
    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI tool_calls, with index


def _same_call(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def args(call: dict[str, Any]) -> Any:
        value = call.get("arguments")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    return a.get("name") == b.get("name") and args(a) == args(b)


class ToolCallParser:
    """Incremental parser: ``feed(text)`` any split of the output, then ``finish()``.

    Returns content text outside calls and completed calls in OpenAI shape
    ``{"index", "id", "type": "function", "function": {"name", "arguments"}}``.
    With ``parallel=False`` only the first call is kept. A call identical (same name, same
    arguments) to an earlier one of the same answer is a model repeating itself (small models
    do, e.g. SmolLM2 under ``tool_choice: required``): it is dropped and the answer ends there.
    """

    def __init__(self, fmt: str = HERMES, parallel: bool = True,
                 raw_tools: frozenset[str] = frozenset()) -> None:
        self.format = format_of(fmt)
        self.fmt = fmt
        self.parallel = parallel
        self.raw_tools = raw_tools  # custom tools whose forced input is raw text (custom.py)
        self.calls: list[dict[str, Any]] = []
        self.done = False          # parallel=False and one call is complete
        self._buf = ""
        self._mode = "start"       # start | text | call | json
        self._ws = ""              # whitespace held back between/after calls

    # -- helpers
    def _emit_call(self, call: dict[str, Any], res: ParseResult) -> None:
        if self.done:
            return
        if any(_same_call(call, c["function"]) for c in self.calls):
            self.done = True
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
        return self.format.open_tag

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
            if self.format.close_tag is None:   # bare JSON after an optional tag
                tag = self.format.open_tag
                if tag.startswith(stripped) and not final:
                    return False
                if stripped.startswith(tag):
                    self._buf = stripped[len(tag):]
                    self._mode = "json"
                    return True
                if stripped[0] in self.format.bare_starts:
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
                self._mode = "call" if self.format.close_tag else "json"
                return True
            keep = 0 if final else held_suffix(buf, (marker,))
            self._emit_text(buf[: len(buf) - keep], res)
            self._buf = buf[len(buf) - keep:]
            return False
        if self._mode == "call":  # a wrapped call's body, up to its close tag
            close = self.format.close_tag or ""
            end = buf.find(close)
            if end < 0 and not final:
                return False
            body = buf if end < 0 else buf[:end]
            call = self._parse_json_call(body.strip())
            if call is None:
                self._emit_text(self._open + (buf if end < 0 else buf[: end + len(close)]), res)
            else:
                self._emit_call(call, res)
            self._buf = "" if end < 0 else buf[end + len(close):]
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

    def _parse_json_call(self, body: str) -> dict[str, Any] | None:
        if self.raw_tools:
            raw = custom.raw_call_input(body, self.raw_tools, self.format.args_key)
            if raw is not None:
                return raw
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
