"""What a tool-call format is: the facts the detector, the grammar and the parser need.

Each format is one module of this package (``hermes.py``, ``llama3.py``, ``mistral.py``)
defining ``FORMAT``; the package's ``FORMAT_ORDER`` lists them in detection order. A new
format is a new module plus its place in that list. Pure: no mlx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolFormat:
    name: str
    open_tag: str                 # what opens tool calls in the model's output
    close_tag: str | None         # wrapped formats close every call; None: bare JSON follows open_tag
    bare_starts: str              # characters that start calls without open_tag ("": never)
    args_key: str                 # the arguments' key in the call object the grammar forces
    tokenizer_start: str          # mlx-lm's ``tool_call_start`` for models of this format
    in_template: Callable[[str], bool]      # the chat template writes calls this way
    grammar: Callable[[str, bool], str]     # (one call's %json rule, parallel) -> Lark grammar
