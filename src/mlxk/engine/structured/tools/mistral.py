"""``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``."""

from __future__ import annotations

from mlxk.engine.structured.tools.formats import ToolFormat


def _grammar(call: str, parallel: bool) -> str:
    more = '(", " call)*' if parallel else ""
    return f'start: "[TOOL_CALLS][" call {more} "]"\ncall: {call}\n'


FORMAT = ToolFormat(name="mistral", open_tag="[TOOL_CALLS]", close_tag=None, bare_starts="{[",
                    args_key="arguments", tokenizer_start="[TOOL_CALLS]",
                    in_template=lambda t: "[TOOL_CALLS]" in t, grammar=_grammar)
