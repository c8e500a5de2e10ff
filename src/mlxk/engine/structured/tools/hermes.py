"""``hermes`` (Hermes, Qwen 2/2.5/3, SmolLM3, many others, and our fallback)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>
"""

from __future__ import annotations

from mlxk.engine.structured.tools.formats import ToolFormat


def _grammar(call: str, parallel: bool) -> str:
    more = '("\\n" one)*' if parallel else ""
    return f'start: one {more}\none: "<tool_call>\\n" call "\\n</tool_call>"\ncall: {call}\n'


FORMAT = ToolFormat(name="hermes", open_tag="<tool_call>", close_tag="</tool_call>", bare_starts="",
                    args_key="arguments", tokenizer_start="<tool_call>",
                    in_template=lambda t: "<tool_call>" in t, grammar=_grammar)
