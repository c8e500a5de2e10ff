"""The pool's records: a ``Target`` (what a client's model name resolves to) and the ``ModelEntry``
the pool keeps for it while it loads, serves and waits to be unloaded. No mlx here."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlxk.cache.runnable import Job
from mlxk.engine.types import LoadedModel

if TYPE_CHECKING:
    from mlxk.engine.batch import BatchScheduler
    from mlxk.engine.embeddings.encoder import EmbeddingModel


@dataclass(frozen=True)
class Target:
    """A resolved, loadable model."""

    key: str
    path: Path
    job: Job = "text"
    adapter: str | None = None      # a served LoRA folder (``base+name``), applied at load
    base: str | None = None         # ... and the key of the base model it shares weights with


@dataclass(eq=False)
class ModelEntry:
    key: str                        # the id clients see (org/name, or a local dir's name)
    path: Path
    size_bytes: int
    pinned: bool = False
    job: Job = "text"               # text: a BatchScheduler; embedding: an encoder, no scheduler
    scheduler: BatchScheduler | None = None   # text models only
    lm: LoadedModel | EmbeddingModel | None = None   # once ready (text: LoadedModel)
    in_use: int = 0
    loads: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None
    keep_alive: float | None = None  # this model's own keep-alive (``load --keep-alive``); None: the server's
    loaded_at: float = 0.0          # wall-clock epoch seconds when it became ready
    stopping: bool = False          # ``stop`` is draining it: new requests get a 503
    adapter: str | None = None      # a served LoRA (``base+name``): its folder
    base: str | None = None         # ... and its base's key: the base stays loaded while it is

    @property
    def loaded(self) -> bool:
        return self.lm is not None
