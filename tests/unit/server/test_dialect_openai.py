"""The OpenAI chat/completions translators and the logprobs of Responses and Ollama, without a
server: core events (several sequences, logprob entries) -> wire chunks."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from mlxk.errors import ServerBusy
from mlxk.server import core
from mlxk.server.dialects import ollama as oll
from mlxk.server.dialects import openai_chat, openai_completions
from mlxk.server.dialects import openai_responses as rsp

TIMINGS = core.Timings(total_ns=9, load_ns=1, prompt_eval_ns=3, eval_ns=5)


class Tok:
    """Token i decodes to the i-th lowercase letter."""

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(97 + i) for i in ids)


def run(sequences: int = 1, prompt_logprobs: int | None = None) -> Any:
    return SimpleNamespace(model="org/m", sequences=sequences, prompt_tokens=4, tokenizer=Tok(),
                           prompt_text=lambda i: f"P{i}", prompt_ids=lambda i: [0, 1],
                           request=SimpleNamespace(prompt_logprobs=prompt_logprobs))


def entry(i: int, text: str | None = None, lp: float = -0.5) -> dict[str, Any]:
    return {"id": i, "text": chr(97 + i) if text is None else text, "logprob": lp,
            "top": [{"id": i, "logprob": lp}, {"id": 25, "logprob": -3.0}]}


def finished(seq: int, n: int = 2, reason: str = "stop") -> core.Finished:
    return core.Finished(reason, 4, n, 0, TIMINGS, seq=seq)


def chunks(data: bytes) -> list[Any]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.startswith("data: "):
            body = block.removeprefix("data: ")
            out.append(body if body == "[DONE]" else json.loads(body))
    return out


def test_chat_stream_n_choices_logprobs_usage_and_done() -> None:
    w = openai_chat.StreamWriter(run(2), include_usage=True)
    first = chunks(w.start())
    assert [c["choices"][0]["index"] for c in first] == [0, 1]
    assert all(c["choices"][0]["delta"] == {"role": "assistant", "content": ""} for c in first)
    data = w.feed([core.TextDelta("a", (entry(0),), seq=0), core.TextDelta("b", seq=1)])
    data += w.feed([core.TextDelta("", (entry(2, ""),), seq=0), finished(0)])
    assert b"[DONE]" not in data
    data += w.feed([core.ToolCall(0, "call_1", "f", "{}", seq=1), finished(1, 3, "tool_calls")])
    got = chunks(data)
    assert got[-1] == "[DONE]" and got[-2]["choices"] == []
    assert got[-2]["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    c0 = [c["choices"][0] for c in got[:-2] if c["choices"][0]["index"] == 0]
    assert c0[0]["delta"] == {"content": "a"}
    assert c0[0]["logprobs"]["content"][0]["top_logprobs"][1] == {"token": "z", "logprob": -3.0,
                                                                   "bytes": [122]}
    assert c0[1]["delta"] == {} and c0[1]["logprobs"]["content"][0]["token"] == ""
    assert c0[2]["finish_reason"] == "stop"
    c1 = [c["choices"][0] for c in got[:-2] if c["choices"][0]["index"] == 1]
    assert c1[0] == {"index": 1, "delta": {"content": "b"}, "logprobs": None, "finish_reason": None}
    assert c1[1]["delta"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert c1[2]["finish_reason"] == "tool_calls"


def test_chat_stream_failure_is_one_error_event() -> None:
    w = openai_chat.StreamWriter(run(), include_usage=False)
    got = chunks(w.feed([core.TextDelta("a"), core.Failed(ServerBusy("full"))]))
    assert got[-1]["error"]["message"] == "full" and len(got) == 2
    assert w.feed([core.Failed(RuntimeError("again"))]) == b""


def test_chat_body_collects_every_choice() -> None:
    results = [core.Result(text="ab", logprobs=[entry(0), entry(1)], finished=finished(0)),
               core.Result(text="", tool_calls=[core.ToolCall(0, "c", "f", "{}", seq=1)],
                           finished=finished(1, 3, "tool_calls"))]
    body = openai_chat.body(run(2), results, want_logprobs=True)
    assert body["usage"]["completion_tokens"] == 5 and body["object"] == "chat.completion"
    first, second = body["choices"]
    assert "".join(t["token"] for t in first["logprobs"]["content"]) == first["message"]["content"]
    assert second["message"]["content"] is None
    assert second["message"]["tool_calls"] == [{"id": "c", "type": "function",
                                                "function": {"name": "f", "arguments": "{}"}}]


def test_completions_stream_echo_with_prompt_logprobs_and_offsets() -> None:
    w = openai_completions.StreamWriter(run(1, prompt_logprobs=1), include_usage=False, echo=True)
    assert w.start() == b""          # the prompt comes with its logprobs
    data = w.feed([core.PromptLogprobs((None, {"id": 1, "logprob": -2.0, "top": []})),
                   core.TextDelta("c", (entry(2),)), core.TextDelta("d", (entry(3),)),
                   finished(0)])
    got = [c["choices"][0] for c in chunks(data)[:-1]]
    assert got[0]["text"] == "P0" and got[0]["logprobs"]["token_logprobs"] == [None, -2.0]
    assert got[0]["logprobs"]["tokens"] == ["a", "b"]
    assert [g["logprobs"]["text_offset"] for g in got[1:3]] == [[2], [3]]
    plain = openai_completions.StreamWriter(run(2), include_usage=False, echo=True)
    assert [c["choices"][0]["text"] for c in chunks(plain.start())] == ["P0", "P1"]


def test_responses_logprobs_on_deltas_done_and_part() -> None:
    req = rsp.ResponsesRequest.model_validate({"model": "m", "input": "x", "top_logprobs": 1,
                                               "include": ["message.output_text.logprobs"]})
    assert req.logprobs == 1
    w = rsp.StreamWriter(rsp.Builder(req, "m", frozenset(), len, tokenizer=Tok()), lambda f: None)
    data = w.feed([core.TextDelta("", (entry(0, ""),)), core.TextDelta("ab", (entry(1, "ab"),)),
                   core.TextDelta("", (entry(2, ""),)), finished(0, 3)])
    events = {}
    for block in data.decode().split("\n\n"):
        if block:
            name, payload = block.split("\n", 1)
            events.setdefault(name.removeprefix("event: "), []).append(
                json.loads(payload.removeprefix("data: ")))
    delta = events["response.output_text.delta"]
    assert len(delta) == 1 and [t["token"] for t in delta[0]["logprobs"]] == ["", "ab"]
    assert delta[0]["logprobs"][1]["top_logprobs"][0] == {"token": "b", "logprob": -0.5, "bytes": [98]}
    done = events["response.output_text.done"][0]["logprobs"]
    assert [t["token"] for t in done] == ["", "ab", ""]
    final = events["response.completed"][0]["response"]
    assert final["output"][0]["content"][0]["logprobs"] == done and final["top_logprobs"] == 1
    off = rsp.ResponsesRequest.model_validate({"model": "m", "input": "x", "include": ["x.y"]})
    assert off.logprobs is None


def test_ollama_lines_and_answer_carry_logprobs() -> None:
    req = oll.ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                          "logprobs": True})
    creq = oll.with_logprobs(oll.chat_to_core(req), req)
    assert creq.gen.logprobs == 0
    w = oll.StreamWriter("m", chat=True, tokenizer=Tok())
    lines = [json.loads(x) for x in w.feed([core.TextDelta("a", (entry(0),)), finished(0, 1)])
             .splitlines()]
    assert lines[0]["logprobs"][0] == {"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": [
        {"token": "a", "logprob": -0.5, "bytes": [97]}, {"token": "z", "logprob": -3.0, "bytes": [122]}]}
    assert lines[1]["done"] and "logprobs" not in lines[1]
    whole = oll.generate_response("m", core.Result(text="a", logprobs=[entry(0)], finished=finished(0)),
                                  Tok())
    assert [t["token"] for t in whole["logprobs"]] == ["a"]
    assert "logprobs" not in oll.generate_response("m", core.Result(text="a", finished=finished(0)))
