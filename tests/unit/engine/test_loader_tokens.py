"""End-of-turn ids, hidden specials and reasoning format from a tokenizer's vocabulary."""

from __future__ import annotations

from types import SimpleNamespace

from mlxk.engine.loader import describe_tokens


def _tok(vocab: dict[str, int], specials: list[str], eos: int, template: str = "") -> SimpleNamespace:
    return SimpleNamespace(get_vocab=lambda: vocab, all_special_ids=[vocab[s] for s in specials],
                           added_tokens_decoder={}, eos_token_ids={eos}, eos_token_id=eos,
                           chat_template=template)


def test_chatml_model() -> None:
    v = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<tool_call>": 3, "hi": 4}
    facts = describe_tokens(_tok(v, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>"], 0), {})
    assert facts["eos"] == {0, 2}
    assert facts["hidden"] == {1}           # the tool-call marker stays visible for the parser
    assert facts["format"] is None and facts["markers"] == set()


def test_llama3_end_tokens_from_config() -> None:
    v = {"<|begin_of_text|>": 0, "<|eot_id|>": 1, "<|eom_id|>": 2, "<|end_of_text|>": 3,
         "<|start_header_id|>": 4, "<|python_tag|>": 5}
    facts = describe_tokens(_tok(v, list(v), 3), {"eos_token_id": [3, 1]})
    assert facts["eos"] == {1, 2, 3}
    assert facts["hidden"] == {0, 4}


def test_think_model() -> None:
    v = {"<|im_end|>": 0, "<think>": 1, "</think>": 2, "x": 3}
    facts = describe_tokens(_tok(v, ["<|im_end|>", "<think>", "</think>"], 0), {})
    assert facts["format"] == "think"
    assert facts["hidden"] == set()         # think tags reach the splitter


def test_harmony_model() -> None:
    names = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>",
             "<|constrain|>", "<|endoftext|>"]
    v = {n: i for i, n in enumerate(names)}
    facts = describe_tokens(_tok(v, names, v["<|return|>"]), {})
    assert facts["format"] == "harmony"
    assert v["<|end|>"] not in facts["eos"]  # only ends the analysis message
    assert {v["<|return|>"], v["<|call|>"]} <= facts["eos"]
    assert facts["markers"] == {v[n] for n in ("<|start|>", "<|channel|>", "<|message|>", "<|end|>",
                                               "<|constrain|>")}
    assert facts["hidden"] == set()
