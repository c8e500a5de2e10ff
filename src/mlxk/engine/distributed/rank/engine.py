"""The single-process engine, fed with a sharded model.

Loading: the rank resolves the model in its own cache, builds the mlx-lm model
lazily, shards it (``distributed.load_sharded_model``) and hands it to the engine's
``loader.load_model`` so prompt encoding, decoding, stop handling and reasoning are
the exact code a single process runs. Generation is ``generate.stream``: every rank
runs it on the same request with the same seed, and the collectives inside the
sharded forward pass keep them in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlxk.engine.types import Chunk, GenerationRequest


def generation_stream() -> Any:
    from mlx_lm.generate import generation_stream as gs

    return gs


def load_sharded(ref: str, name: str | None, group: Any, mode: str) -> Any:
    from mlxk.engine.distributed.rank.group import load_sharded_model
    from mlxk.operations.run import resolve_runnable

    resolved = resolve_runnable(ref)
    path = Path(resolved.path)
    model, config = load_sharded_model(path, group, mode)
    return _wrap(path, name or resolved.name, model, config)


def _wrap(path: Path, name: str, model: Any, config: dict[str, Any]) -> Any:
    from mlxk.engine import loader

    return loader.load_model(path, name, model=model, config=config)


def stream(lm: Any, request: GenerationRequest) -> Iterator[Chunk]:
    from mlxk.engine import generate

    yield from generate.stream(lm, request)


def prepare(lm: Any, request: GenerationRequest) -> Any:
    from mlxk.engine import generate

    return generate.prepare(lm, request)
