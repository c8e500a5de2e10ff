"""A text model's scheduler as the server's flags and ``--model-options`` ask for it: batch and queue
limits, chunked prefill and the on-disk prefix cache, KV-cache options, speculative decoding, the
metrics hooks, and what loads the model (a served adapter goes on its base's loaded weights)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlxk.engine.types import CacheOptions, LoadedModel
from mlxk.server.loras import Adapters
from mlxk.server.metrics import Metrics
from mlxk.server.pool_adapters import load_on_base
from mlxk.server.pool_entry import ModelEntry
from mlxk.server.pool_loaders import scheduler_class
from mlxk.server.pool_report import scheduler_hooks
from mlxk.server.settings import OptionValue, ServerSettings

if TYPE_CHECKING:
    from mlxk.engine.batch import BatchScheduler


class SchedulerMaker:
    """Builds each text model's scheduler; ``loader`` loads a model (and a draft model),
    ``factory`` replaces the scheduler class (tests, the distributed leader)."""

    def __init__(self, settings: ServerSettings, metrics: Metrics, adapters: Adapters,
                 loader: Callable[..., LoadedModel],
                 factory: Callable[..., BatchScheduler] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.adapters = adapters
        self._loader = loader
        self._factory = factory

    def make(self, entry: ModelEntry, base: ModelEntry | None) -> BatchScheduler:
        """The scheduler of ``entry``; ``base`` is the loaded base of a served adapter."""
        s, key, path, loader = self.settings, entry.key, entry.path, self._loader
        factory = self._factory or scheduler_class(path)
        adapter = entry.adapter or self.options(key).get("adapter_path")

        def load() -> LoadedModel:
            if base is not None and adapter:
                return load_on_base(base, str(adapter), key)
            return loader(path, key, adapter) if adapter else loader(path, key)

        return factory(load, name=key, max_batch=s.max_batch, max_queue=s.max_queue,
                       **scheduler_hooks(self.metrics, key), **self._prefill_options(entry),
                       cache_options=self.cache_options(key), **self._spec_options(key))

    def options(self, key: str) -> dict[str, OptionValue]:
        """The generation options of model ``key`` (flags, then ``--model-options``); a served
        adapter ``base+name`` has its base's options, less the base's own ``adapter_path``."""
        from mlxk.server.model_options import options_for

        served = self.adapters.by_id(key)
        opts = options_for(self.settings.generation, self.settings.model_options,
                           served.base if served else key)
        return {k: v for k, v in opts.items() if k != "adapter_path"} if served else opts

    def cache_options(self, key: str) -> CacheOptions:
        from mlxk.server.model_options import cache_options

        return cache_options(self.options(key))

    def _spec_options(self, key: str) -> dict[str, object]:
        """Speculative decoding for model ``key``: ``--prompt-lookup`` or ``--draft-model``."""
        opts = self.options(key)
        if opts.get("prompt_lookup"):
            return {"prompt_lookup": opts["prompt_lookup"]}
        draft = opts.get("draft_model")
        if not draft:
            return {}
        loader, name = self._loader, str(opts.get("draft_name") or draft)
        return {"draft_load": lambda: loader(Path(str(draft)), name),
                "num_draft": int(opts.get("num_draft_tokens") or 3)}

    def _prefill_options(self, entry: ModelEntry) -> dict[str, str | int]:
        """Chunked prefill and the on-disk prefix cache (``serve --prefill-chunk``, ``--prompt-cache-dir``)."""
        s = self.settings
        opts: dict[str, str | int] = {"prefill_step_size": s.prefill_chunk}
        if s.prompt_cache_dir:
            # the snapshot directory names the revision; a local model dir names itself
            opts.update(prompt_cache_dir=os.path.join(s.prompt_cache_dir, _safe_name(entry.key)),
                        prompt_cache_disk_bytes=s.prompt_cache_disk_bytes,
                        model_id=f"{entry.key}@{os.path.realpath(entry.path)}")
        return opts


def _safe_name(key: str) -> str:
    """A model key as one directory name (``org/name`` -> ``org--name``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", key).strip(".") or "model"
