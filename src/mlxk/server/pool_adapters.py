"""Served LoRA adapters in the pool (``serve --lora``): each is its own entry, ``base+name``, that
rides on its base's entry. Which adapters exist and how a name finds one is ``server/loras.py``;
this module holds the rules that follow from an adapter sharing its base's weights
(``engine.adapters.adapted_copy``):

- it loads after its base, which is held meanwhile so no eviction takes it (``ensure_on_base``);
- it costs the memory budget only its own adapter file, and ``--max-loaded`` does not count it
  (``entry_size``, ``model_count``);
- using it uses its base: the base's keep-alive runs from the last use of either (``touch``);
- the base unloads only when its adapters are idle, and takes them along, first (``riders``).

No mlx here (``adapted_copy`` is imported when an adapter loads).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from mlxk.cache.runnable import Job
from mlxk.engine.types import LoadedModel
from mlxk.errors import ModelNotFound
from mlxk.server.loras import SEP, Adapters
from mlxk.server.pool_entry import ModelEntry, Target
from mlxk.server.pool_loaders import adapter_size, weights_size


def adapter_target(adapters: Adapters, name: str, job: Job, resolve: Callable[[str], Target],
                   alias: Callable[[str], str | None]) -> Target | None:
    """The served adapter a request's model ``name`` asks for, as a target; None: a plain model.

    ``resolve`` finds a text model in the cache and ``alias`` a name the pool already loaded, so a
    base is named the way any request names a model.
    """
    if job == "text" and adapters:
        served = adapters.find(name, lambda base: alias(base) or resolve(base).key)
        if served is not None:
            ref = served.base_ref
            path = Path(ref) if os.path.isabs(ref) else resolve(ref).path
            return Target(served.id, path, "text", served.path, served.base)
    elif SEP in name:
        raise ModelNotFound(f"model '{name}' names an adapter, and this server serves none "
                            "(serve --lora NAME=DIR)", param="model")
    return None


async def ensure_on_base(ensure: Callable[[Target], Awaitable[ModelEntry]], target: Target) -> ModelEntry:
    """A served adapter: its base first (loaded, then held so nothing evicts it meanwhile)."""
    assert target.base is not None
    base = await ensure(Target(target.base, target.path, "text"))
    base.in_use += 1
    try:
        return await ensure(target)
    finally:
        base.in_use = max(0, base.in_use - 1)


def load_on_base(base: ModelEntry, folder: str, key: str) -> LoadedModel:
    """The adapter at ``folder`` over ``base``'s loaded model, sharing its weights."""
    from mlxk.engine.adapters import adapted_copy

    return adapted_copy(base.lm, folder, key)   # type: ignore[arg-type]  # vision, embedding: refused


def entry_size(target: Target) -> int:
    """Bytes ``target`` adds when it loads: a served adapter only its own file (its base's weights
    are counted once, on the base); a model its weights, plus its own ``--adapter-path`` if any."""
    own = adapter_size(target.adapter) if target.adapter else 0
    return own if target.base else weights_size(target.path) + own


def model_count(entries: Mapping[str, ModelEntry]) -> int:
    """Loaded models as ``--max-loaded`` counts them: a served adapter rides on its base."""
    return sum(1 for e in entries.values() if e.base is None)


def riders(entries: Mapping[str, ModelEntry], base: ModelEntry) -> list[ModelEntry]:
    """The served adapters riding on ``base``."""
    return [e for e in entries.values() if e.base == base.key]


def touch(entries: Mapping[str, ModelEntry], entry: ModelEntry) -> None:
    """Mark ``entry`` used now; using an adapter uses its base, so the base's keep-alive runs from
    the last use of either."""
    now = time.monotonic()
    entry.last_used = now
    base = entries.get(entry.base) if entry.base else None
    if base is not None:
        base.last_used = max(base.last_used, now)
