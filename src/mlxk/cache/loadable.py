"""Refuse a model ``health`` calls unhealthy before anything loads it.

``run``, ``embed`` and ``serve`` (through ``cache.runnable``) ask this, so a model with a
dangling ``tokenizer.json`` link or truncated weights is refused with the health reason instead
of answering with an empty string or an HTTP 500. Reads files only (no mlx import).
"""

from __future__ import annotations

from mlxk.cache.evaluate import evaluate
from mlxk.cache.resolve import ResolvedModel
from mlxk.errors import NotRuntimeCompatible


def refuse_unhealthy(resolved: ResolvedModel) -> None:
    """``NotRuntimeCompatible`` naming the first integrity problem of the selected revision."""
    problems = evaluate(resolved).problems
    if problems:
        hint = f"; 'mlxk health {resolved.name}' lists the problems" if resolved.cached else ""
        raise NotRuntimeCompatible(f"{resolved.name} is unhealthy: {problems[0]}{hint}",
                                   reason=problems[0])
