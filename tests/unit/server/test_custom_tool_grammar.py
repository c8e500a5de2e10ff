"""OpenAI Responses ``custom`` tools with a grammar: the translation, the 400s, the forced-call
grammar and its parse (``engine/structured/custom.py``), with the in-process random model."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from mlxk.engine.structured import custom
from mlxk.engine.structured import tools as T
from mlxk.errors import ValidationError
from mlxk.server.dialects import openai_responses as rsp

PHONE = {"type": "custom", "name": "dial", "description": "dial a number",
         "format": {"type": "grammar", "syntax": "regex", "definition": r"\d{3}-\d{4}"}}
# A quote and a backslash in the language: a raw input must come back verbatim.
SUM = {"type": "custom", "name": "calc", "description": "add numbers",
       "format": {"type": "grammar", "syntax": "lark",
                  "definition": 'start: NUM | NUM OP NUM\nNUM: /[0-9]{1,3}/\nOP: "+" | "\\"" | "\\\\"\n'}}
SUM_RE = re.compile(r'[0-9]{1,3}(?:[+"\\][0-9]{1,3})?')


def translate(tools: list[dict[str, Any]], choice: Any = None) -> Any:
    body = {"model": "m", "input": "x", "tools": tools, **({"tool_choice": choice} if choice else {})}
    return rsp.to_core(rsp.ResponsesRequest.model_validate(body), rsp.ResponseStore())


def test_regex_becomes_an_anchored_pattern_and_lark_travels_with_the_tool() -> None:
    gen = translate([PHONE, SUM, {"type": "custom", "name": "free"}],
                    {"type": "custom", "name": "dial"}).core.gen
    dial, calc, free = gen.tools
    assert dial["function"]["parameters"]["properties"]["input"]["pattern"] == r"^(?:\d{3}-\d{4})$"
    assert custom.GRAMMAR_KEY not in dial and custom.GRAMMAR_KEY not in free
    assert calc[custom.GRAMMAR_KEY] == {"syntax": "lark", "definition": SUM["format"]["definition"]}
    assert free["function"]["parameters"]["properties"]["input"] == {"type": "string"}
    assert custom.lark_tools(gen.tools) == {"calc": SUM["format"]["definition"]}
    assert gen.tool_choice == {"type": "function", "function": {"name": "dial"}}


@pytest.mark.parametrize(("fmt", "needle"), [
    ({"type": "grammar", "syntax": "regex", "definition": r"\d{3"}, "invalid regex grammar"),
    ({"type": "grammar", "syntax": "lark", "definition": "start: nowhere"}, "invalid lark grammar"),
    ({"type": "grammar", "syntax": "lark", "definition": "  "}, "non-empty string"),
    ({"type": "grammar", "syntax": "ebnf", "definition": "x"}, "'lark' or 'regex'"),
    ({"type": "json"}, "format must be"),
])
def test_a_bad_grammar_is_a_400_naming_the_tool(fmt: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        translate([{"type": "custom", "name": "broken_tool", "format": fmt}])
    assert exc.value.http_status == 400 and exc.value.extra["param"] == "tools"
    assert needle in exc.value.message
    assert "broken_tool" in exc.value.message or fmt.get("type") == "json"


def test_forced_lark_call_grammar_uses_a_subgrammar_and_parses_raw() -> None:
    tools = T.normalize_tools(translate([PHONE, SUM]).core.gen.tools)
    lark, subs = T.call_grammar_lark(T.HERMES, tools, T.ToolChoice("named", "calc"), False,
                                     lambda s: "%json " + json.dumps(s),
                                     {"calc": SUM["format"]["definition"]})
    assert subs == {"custom_0": SUM["format"]["definition"]} and "@custom_0" in lark
    assert "%json" not in lark                     # only the named (raw) tool is allowed
    both, _ = T.call_grammar_lark(T.HERMES, tools, T.ToolChoice("required"), True,
                                  lambda s: "%json " + json.dumps(s),
                                  {"calc": SUM["format"]["definition"]})
    assert "%json" in both and "raw_call_0" in both
    with pytest.raises(ValidationError, match="bare JSON"):
        T.call_grammar_lark(T.LLAMA3, tools, T.ToolChoice("named", "calc"), False,
                            lambda s: "%json " + json.dumps(s),
                            {"calc": SUM["format"]["definition"]})
    raw = '<tool_call>\n{"name": "calc", "arguments": {"input": "1\\"2"}}\n</tool_call>'
    _, calls = T.parse_tool_calls(raw)             # without the raw set: JSON decoding
    assert json.loads(calls[0]["function"]["arguments"]) == {"input": '1"2'}
    p = T.ToolCallParser(T.HERMES, True, frozenset({"calc"}))
    got = [c for part in (raw[:30], raw[30:]) for c in p.feed(part).calls] + p.finish().calls
    assert json.loads(got[0]["function"]["arguments"]) == {"input": '1\\"2'}  # verbatim


# --- with the engine: a random model forced through the grammar ---------------------------------

mx = pytest.importorskip("mlx.core")


@pytest.fixture(scope="module")
def tiny_lm() -> Any:
    from tests.support.structured_lm import build_tiny_lm

    return build_tiny_lm()


def forced_inputs(lm: Any, tool: dict[str, Any], seeds: range) -> list[str]:
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler
    from tests.support.structured_lm import FakeDecoder

    from mlxk.engine.structured import plan as S

    gen = translate([PHONE, SUM], {"type": "custom", "name": tool["name"]}).core.gen
    out = []
    for seed in seeds:
        p = S.plan(lm, gen)
        prepared = SimpleNamespace(logits_processors=[],
                                   decoder=FakeDecoder(lm.tokenizer, lm.eos_token_ids))
        S.attach(lm, p, prepared)
        mx.random.seed(seed)
        chunks = []
        for tok, _ in generate_step(mx.array(lm.tokenizer.encode("hello")), lm.model,
                                    max_tokens=120, sampler=make_sampler(1.0),
                                    logits_processors=prepared.logits_processors):
            chunks += prepared.decoder.feed(tok)
            if prepared.decoder.finished:
                break
        chunks.append(prepared.decoder.finish("stop"))
        calls = [c for ch in chunks for c in ch.tool_calls or []]
        assert len(calls) == 1 and calls[0]["function"]["name"] == tool["name"]
        out.append(json.loads(calls[0]["function"]["arguments"])["input"])
    return out


def test_random_model_forced_through_a_regex_custom_tool(tiny_lm: Any) -> None:
    for text in forced_inputs(tiny_lm, PHONE, range(3)):
        assert re.fullmatch(r"\d{3}-\d{4}", text), text


def test_random_model_forced_through_a_lark_custom_tool(tiny_lm: Any) -> None:
    for text in forced_inputs(tiny_lm, SUM, range(4)):
        assert SUM_RE.fullmatch(text), text
