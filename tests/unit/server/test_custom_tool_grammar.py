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


def translate(tools: list[dict[str, Any]], choice: Any = None, **extra: Any) -> Any:
    body = {"model": "m", "input": "x", "tools": tools, **({"tool_choice": choice} if choice else {}),
            **extra}
    return rsp.to_core(rsp.ResponsesRequest.model_validate(body), rsp.ResponseStore())


def test_regex_becomes_an_anchored_pattern_and_lark_travels_with_the_tool() -> None:
    gen = translate([PHONE, SUM, {"type": "custom", "name": "free"}],
                    {"type": "custom", "name": "dial"}).core.gen
    dial, calc, free = gen.tools
    assert dial["function"]["parameters"]["properties"]["input"]["pattern"] == r"^(?:\d{3}-\d{4})$"
    assert dial[custom.GRAMMAR_KEY] == {"syntax": "regex", "definition": r"\d{3}-\d{4}"}
    assert custom.GRAMMAR_KEY not in free and custom.has_grammar(gen.tools)
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
    assert "json_call_0" in both and "raw_call_0" in both   # one rule per tool, parted by name
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


def forced_call(lm: Any, gen: Any, seed: int) -> tuple[str, str]:
    """(tool name, input) of the one call a random model makes under ``gen``'s plan."""
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler
    from tests.support.structured_lm import FakeDecoder

    from mlxk.engine.structured import plan as S

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
    assert len(calls) == 1, chunks
    return calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"])["input"]


def forced_inputs(lm: Any, tool: dict[str, Any], seeds: range) -> list[str]:
    gen = translate([PHONE, SUM], {"type": "custom", "name": tool["name"]}).core.gen
    out = []
    for seed in seeds:
        name, text = forced_call(lm, gen, seed)
        assert name == tool["name"]
        out.append(text)
    return out


def test_random_model_forced_through_a_regex_custom_tool(tiny_lm: Any) -> None:
    for text in forced_inputs(tiny_lm, PHONE, range(3)):
        assert re.fullmatch(r"\d{3}-\d{4}", text), text


def test_random_model_forced_through_a_lark_custom_tool(tiny_lm: Any) -> None:
    for text in forced_inputs(tiny_lm, SUM, range(4)):
        assert SUM_RE.fullmatch(text), text


def test_required_with_regex_and_lark_tools_validates_whichever_is_called(tiny_lm: Any) -> None:
    gen = translate([PHONE, SUM], "required", parallel_tool_calls=False).core.gen
    names = set()
    for seed in range(6):
        name, text = forced_call(tiny_lm, gen, seed)
        names.add(name)
        assert (re.fullmatch(r"\d{3}-\d{4}", text) if name == "dial" else SUM_RE.fullmatch(text)), text
    assert names == {"dial", "calc"}


def test_auto_mode_keeps_free_text_and_constrains_calls(tiny_lm: Any) -> None:
    import llguidance

    from mlxk.engine.structured import grammar as C
    from mlxk.engine.structured import plan as S

    p = S.plan(tiny_lm, translate([PHONE, SUM], "auto").core.gen)
    assert p.grammar_lark.startswith("start: auto_call* auto_end") and p.raw_tools == {"calc"}
    lltok = C.ll_tokenizer(tiny_lm.tokenizer)

    def accepts(text: str) -> bool:
        m = llguidance.LLMatcher(lltok, C.lark_grammar(p.grammar_lark, p.subgrammars), log_level=0)
        return m.consume_tokens(lltok.tokenize_str(text)) and m.is_accepting()

    call = '<tool_call>\n{{"name": "{}", "arguments": {{"input": "{}"}}}}\n</tool_call>'
    assert accepts("hello world, no call at all")
    assert accepts("ok " + call.format("dial", "555-1234") + "\n" + call.format("calc", '1"2'))
    assert not accepts(call.format("dial", "55-1234"))
    assert not accepts("text " + call.format("calc", "1-2"))
    no_grammar = S.plan(tiny_lm, translate([{"type": "custom", "name": "free"}], "auto").core.gen)
    assert no_grammar.grammar_lark is None      # plain custom tools leave auto mode unconstrained
