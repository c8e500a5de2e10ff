"""``llama3`` (Llama 3.1+): the answer is a bare JSON object ``{"name": ..., "parameters": ...}``
(or ``"arguments"``), optionally after ``<|python_tag|>``; several separated by ``;``."""

from __future__ import annotations

from mlxk.engine.structured.tools.formats import ToolFormat


def _grammar(call: str, parallel: bool) -> str:
    more = '(";" call)*' if parallel else ""
    return f"start: call {more}\ncall: {call}\n"


def _in_template(t: str) -> bool:
    return "<|python_tag|>" in t or ("<|start_header_id|>" in t and "tools" in t)


FORMAT = ToolFormat(name="llama3", open_tag="<|python_tag|>", close_tag=None, bare_starts="{",
                    args_key="parameters", tokenizer_start="<|python_tag|>",
                    in_template=_in_template, grammar=_grammar)
