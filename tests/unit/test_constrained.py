"""Constrained decoding: a random-weight model must still produce schema-valid JSON.

The model here is built in-process (random llama + a small byte-level BPE tokenizer
trained on the spot), so these tests need neither the engine's fixtures nor a file on disk.
Generation goes through mlx-lm's own ``generate_step`` and ``BatchGenerator``.
"""

from __future__ import annotations

import json
import re

import pytest

mx = pytest.importorskip("mlx.core")
jsonschema = pytest.importorskip("jsonschema")

from tests.support.structured_lm import build_tiny_lm  # noqa: E402

from mlxk.engine.structured import grammar as C  # noqa: E402
from mlxk.errors import ValidationError  # noqa: E402

NESTED = {"type": "object", "properties": {
    "person": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 99}},
        "required": ["name", "age"], "additionalProperties": False}},
    "required": ["person"], "additionalProperties": False}
ARRAY = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
         "minItems": 1, "maxItems": 4}
ENUM = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"], "additionalProperties": False}
SCHEMAS = [NESTED, ARRAY, ENUM]


@pytest.fixture(scope="module")
def tiny_lm():
    return build_tiny_lm()


def _generate(lm, processors, max_tokens=60, temp=1.0, seed=0):
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    mx.random.seed(seed)
    prompt = mx.array(lm.tokenizer.encode("hello world"))
    out = []
    for tok, _ in generate_step(prompt, lm.model, max_tokens=max_tokens,
                                sampler=make_sampler(temp), logits_processors=processors):
        if tok in lm.eos_token_ids:
            return out, True
        out.append(tok)
    return out, False


@pytest.mark.parametrize("schema", SCHEMAS, ids=["nested", "array", "enum"])
def test_random_model_produces_valid_json(tiny_lm, schema):
    for seed in range(3):
        proc = C.processor_for_model(tiny_lm, C.json_schema_grammar(schema))
        out, ended = _generate(tiny_lm, [proc], seed=seed)
        text = tiny_lm.tokenizer.decode(out)
        assert ended, f"no EOS after {len(out)} tokens: {text!r}"
        jsonschema.validate(json.loads(text), schema)
        assert proc.error is None
        # the matcher consumed exactly what the caller saw (+ the EOS it was shown)
        assert proc.consumed in (len(out), len(out) + 1)


def test_unconstrained_random_model_is_not_json(tiny_lm):
    out, _ = _generate(tiny_lm, [], max_tokens=30)
    text = tiny_lm.tokenizer.decode(out)
    with pytest.raises(ValueError):
        json.loads(text)


def test_completed_grammar_forces_eos(tiny_lm):
    proc = C.processor_for_model(tiny_lm, C.json_schema_grammar({"enum": ["yes"]}))
    out, ended = _generate(tiny_lm, [proc], max_tokens=40)
    assert ended and tiny_lm.tokenizer.decode(out) == '"yes"'


def test_regex_and_lark(tiny_lm):
    proc = C.processor_for_model(tiny_lm, C.regex_grammar(r"[a-c]{2,5}"))
    out, ended = _generate(tiny_lm, [proc], max_tokens=20, seed=3)
    assert ended and re.fullmatch(r"[a-c]{2,5}", tiny_lm.tokenizer.decode(out))
    proc = C.processor_for_model(tiny_lm, C.lark_grammar('start: "ab" ("x" | "y")'))
    out, ended = _generate(tiny_lm, [proc], max_tokens=20)
    assert ended and tiny_lm.tokenizer.decode(out) in ("abx", "aby")


def test_batch_generator_one_matcher_per_sequence(tiny_lm):
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.sample_utils import make_sampler

    mx.random.seed(1)
    eos = sorted(tiny_lm.eos_token_ids)
    gen = BatchGenerator(tiny_lm.model, max_tokens=60, stop_tokens=[[e] for e in eos],
                         sampler=make_sampler(1.0))
    procs = [C.processor_for_model(tiny_lm, C.json_schema_grammar(s)) for s in SCHEMAS]
    prompts = [tiny_lm.tokenizer.encode(p) for p in ("a b", "hello world fox", "x", "the")]
    uids = gen.insert(prompts, logits_processors=[[p] for p in procs] + [[]])
    outs = {u: [] for u in uids}
    reasons = {}
    while len(reasons) < len(uids):
        for r in gen.next_generated():
            if r.finish_reason is None or r.token not in tiny_lm.eos_token_ids:
                outs[r.uid].append(r.token)
            if r.finish_reason is not None:
                reasons[r.uid] = r.finish_reason
    gen.close()
    for uid, schema in zip(uids, SCHEMAS, strict=False):
        assert reasons[uid] == "stop"
        jsonschema.validate(json.loads(tiny_lm.tokenizer.decode(outs[uid])), schema)


def test_response_format_mapping_and_errors(tiny_lm):
    assert C.grammar_for_response_format(None) is None
    assert C.grammar_for_response_format({"type": "text"}) is None
    assert C.grammar_for_response_format({"type": "json_object"})
    g = C.grammar_for_response_format(
        {"type": "json_schema", "json_schema": {"name": "x", "schema": ENUM, "strict": True}})
    C.check_grammar(g)
    with pytest.raises(ValidationError, match="unsupported response_format"):
        C.grammar_for_response_format({"type": "yaml"})
    with pytest.raises(ValidationError, match="json_schema"):
        C.grammar_for_response_format({"type": "json_schema"})
    bad = C.grammar_for_response_format(
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "foo"}}})
    with pytest.raises(ValidationError, match="foo"):
        C.processor_for_model(tiny_lm, bad)


def test_constraint_waits_for_end_of_thinking(tiny_lm):
    """A prompt that pre-opens <think>: free thinking, then the grammar from the marker on."""
    grammar = C.json_schema_grammar(ENUM)
    marker = tiny_lm.tokenizer.encode("fox")[-1]
    proc = C.processor_for_model(tiny_lm, grammar, start_after=marker)
    width = tiny_lm.config["vocab_size"]
    logits = mx.zeros((1, width))
    prompt = tiny_lm.tokenizer.encode("hello world")
    assert mx.array_equal(proc(mx.array(prompt), logits), logits)          # first step: free
    thinking = tiny_lm.tokenizer.encode(" the quick brown")
    assert mx.array_equal(proc(mx.array(prompt + thinking), logits), logits)
    masked = proc(mx.array([*prompt, *thinking, marker]), logits)
    allowed = {i for i, v in enumerate(masked[0].tolist()) if v > -1e30}
    fresh = C.processor_for_model(tiny_lm, grammar)
    expect = {i for i, ok in enumerate(fresh.allowed(width).tolist()) if ok}
    assert allowed == expect and 0 < len(allowed) < width
    text = '{"color": "red"}'
    ids = [*prompt, *thinking, marker]
    for tok in tiny_lm.tokenizer.encode(text):
        ids.append(tok)
        proc(mx.array(ids), logits)
    assert proc.error is None and proc.accepting


def test_think_end_token_only_for_think_models():
    class Tok:
        def encode(self, text, add_special_tokens=False):
            return [42] if text == "</think>" else [1, 2]

    from types import SimpleNamespace

    assert C.think_end_token(SimpleNamespace(reasoning_format="think", tokenizer=Tok())) == 42
    assert C.think_end_token(SimpleNamespace(reasoning_format=None, tokenizer=Tok())) is None


OPEN_NESTED = {"type": "object", "properties": {
    "person": {"type": "object", "properties": {"name": {"type": "string"}},
               "required": ["name"]}},
    "required": ["person"]}


def test_strict_schema_closes_every_listed_object_and_keeps_the_input() -> None:
    strict = C.strict_schema(OPEN_NESTED)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["person"]["additionalProperties"] is False
    assert "additionalProperties" not in OPEN_NESTED["properties"]["person"]
    explicit = C.strict_schema({"type": "object", "additionalProperties": True,
                                "$defs": {"p": {"properties": {"a": {"type": "integer"}}}},
                                "allOf": [{"properties": {"b": {"type": "string"}}}]})
    assert explicit["additionalProperties"] is True                 # stated by the schema: kept
    assert explicit["$defs"]["p"]["additionalProperties"] is False
    assert "additionalProperties" not in explicit["allOf"][0]       # allOf parts stay open


@pytest.mark.parametrize("strict", [True, False])
def test_strict_json_schema_forbids_unlisted_keys(tiny_lm, strict: bool) -> None:
    """OpenAI strict mode: a nested object without additionalProperties takes no extra keys
    (issue 12); without strict, JSON Schema's default (extra keys allowed) stays."""
    import llguidance

    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": OPEN_NESTED, "strict": strict}}
    lltok = C.ll_tokenizer(tiny_lm.tokenizer)

    def accepts(text: str) -> bool:
        m = llguidance.LLMatcher(lltok, C.grammar_for_response_format(fmt), log_level=0)
        m.consume_tokens(lltok.tokenize_str(text))
        return not m.is_error()

    assert accepts('{"person": {"name": "a"}}')
    assert accepts('{"person": {"name": "a", "extra": 1}}') is (not strict)
    assert accepts('{"person": {"name": "a"}, "more": 2}') is (not strict)


@pytest.mark.parametrize("parallel", [True, False])
def test_required_call_grammar_may_end_after_one_call(tiny_lm, parallel: bool) -> None:
    """The grammar never forces a second call (issue 12): after one complete call the answer may
    end; when only one call is allowed (parallel_tool_calls false), it must end."""
    import llguidance

    from mlxk.engine.structured import tools as T

    tools = T.normalize_tools([{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]}}}])
    lark, _ = T.call_grammar_lark(T.HERMES, tools, T.ToolChoice("required"), parallel,
                                  C.json_schema_lark)
    lltok = C.ll_tokenizer(tiny_lm.tokenizer)
    m = llguidance.LLMatcher(lltok, C.lark_grammar(lark), log_level=0)
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    m.consume_tokens(lltok.tokenize_str(one))
    assert not m.is_error() and m.is_accepting()
    assert m.is_stopped() is (not parallel)
