"""Tools whose input is free text shaped by a grammar (OpenAI Responses ``custom`` tools with
``format: {"type": "grammar", "syntax": "regex" | "lark", "definition": ...}``).

Internally a custom tool is a function tool with one string argument, ``input``. How its
grammar is enforced on a call (forced by ``tool_choice``, or made in ``auto`` mode, below):

* ``regex``: the ``input`` property gets the JSON-schema ``pattern`` ``^(?:REGEX)$``; the
  forced call's ``%json`` rule then quotes it exactly (llguidance), so the call stays
  valid JSON and needs nothing special after.
* ``lark``: a context-free language cannot be JSON-quoted rule by rule, so the call's
  ``input`` is written *raw* between fixed quotes: ``{"name": "N", "arguments": {"input": "``
  + text of the grammar + ``"}}``. The grammar is an llguidance subgrammar (``@custom_i``)
  of the call grammar, and the tool-call parser takes the text between the fixed prefix
  and suffix verbatim (:func:`raw_call_input`). Only formats that wrap every call in
  tags (``hermes``) can end a raw call; for bare-JSON formats a forced Lark tool is a 400.

With ``tool_choice: auto`` the model may answer or call; where calls are wrapped in tags
(``hermes``) the answer is free text and every call is constrained like a forced one
(``tools.auto_grammar_lark``); with bare-JSON formats auto mode stays unconstrained (the regex
still reaches the model in the tool's schema). Grammars are checked by
``grammar.check_custom_grammar`` (this module stays free of llguidance).
"""

from __future__ import annotations

import json
from typing import Any

GRAMMAR_KEY = "mlxk_grammar"    # a tool dict's key: {"syntax": "lark"|"regex", "definition": ...}
SYNTAXES = ("lark", "regex")
RAW_SUFFIX = '"}}'


def regex_pattern(definition: str) -> str:
    """The whole ``input`` must match (OpenAI's regex grammars are anchored)."""
    return f"^(?:{definition})$"


def input_schema(pattern: str | None = None) -> dict[str, Any]:
    """The function schema of a custom tool: one string ``input`` (with a regex: anchored)."""
    text: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        text["pattern"] = regex_pattern(pattern)
    return {"type": "object", "properties": {"input": text}, "required": ["input"],
            "additionalProperties": False}


def lark_tools(tools: list[dict[str, Any]] | None) -> dict[str, str]:
    """``{tool name: Lark grammar}`` of the tools that carry one (request order)."""
    out: dict[str, str] = {}
    for tool in tools or []:
        spec = tool.get(GRAMMAR_KEY) if isinstance(tool, dict) else None
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(spec, dict) and spec.get("syntax") == "lark" and isinstance(fn, dict):
            out[str(fn.get("name"))] = str(spec.get("definition"))
    return out


def has_grammar(tools: list[dict[str, Any]] | None) -> bool:
    """Some tool carries a grammar (``regex`` or ``lark``) to keep even in ``auto`` mode."""
    return any(isinstance(t, dict) and isinstance(t.get(GRAMMAR_KEY), dict) for t in tools or [])


def raw_prefix(name: str, args_key: str) -> str:
    """What a raw call's text starts with, up to its first input character."""
    return ('{"name": ' + json.dumps(name, ensure_ascii=False) + ", " + json.dumps(args_key)
            + ': {"input": "')


def call_rules(plain: dict[str, str], raw: dict[str, str],
               args_key: str) -> tuple[list[str], str, dict[str, str]]:
    """One Lark rule per tool a forced call may use, when some write their input raw.

    ``plain``: ``{tool name: %json rule of its arguments}``; ``raw``: ``{tool name: Lark
    grammar}``. Every call starts with a literal ``{"name": "N", "<args_key>": `` so the
    alternatives part on the name, in one lexeme class (a ``%json`` call object beside a raw
    literal would make llguidance pick one class at the first ``{``). Returns (rule names,
    their Lark rules, ``{subgrammar name: Lark grammar}``).
    """
    names, rules, subs = [], [], {}
    for i, (name, args) in enumerate(plain.items()):
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ", " + json.dumps(args_key) + ": "
        names.append(f"json_call_{i}")
        rules.append(f'json_call_{i}: {json.dumps(head, ensure_ascii=False)} json_args_{i} "}}"')
        rules.append(f"json_args_{i}: {args}")
    for i, (name, lark) in enumerate(raw.items()):
        rule, sub = f"raw_call_{i}", f"custom_{i}"
        names.append(rule)
        rules.append(f"{rule}: {json.dumps(raw_prefix(name, args_key), ensure_ascii=False)} "
                     f"@{sub} {json.dumps(RAW_SUFFIX)}")
        subs[sub] = lark
    return names, "".join(r + "\n" for r in rules), subs


def raw_call_input(body: str, names: frozenset[str], args_key: str) -> dict[str, Any] | None:
    """A raw call's ``{"name", "arguments"}`` (arguments as a JSON string) if ``body`` is one."""
    for name in names:
        prefix = raw_prefix(name, args_key)
        if body.startswith(prefix) and body.endswith(RAW_SUFFIX) \
                and len(body) >= len(prefix) + len(RAW_SUFFIX):
            text = body[len(prefix): len(body) - len(RAW_SUFFIX)]
            return {"name": name, "arguments": json.dumps({"input": text}, ensure_ascii=False)}
    return None
