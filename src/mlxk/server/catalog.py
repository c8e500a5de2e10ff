"""What ``/v1/models`` lists: healthy, runtime-compatible text models in the cache, plus loaded ones.

Reads the cache only (no mlx import). Results are memoised for a few seconds so
a client polling ``/v1/models`` does not re-hash safetensors headers each time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mlxk.cache.detect import context_length
from mlxk.server.loras import Adapters
from mlxk.server.pool import ModelPool

LISTED_TYPES = frozenset({"chat", "base"})
TTL_SECONDS = 5.0
_memo: dict[str, tuple[float, list[dict[str, Any]]]] = {}
_memo_lock = threading.Lock()


def _card(mid: str, created: float, owned_by: str, model_type: str | None,
          capabilities: list[str], loaded: bool, context_length: int | None = None) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": int(created), "owned_by": owned_by,
            "loaded": loaded, "model_type": model_type, "capabilities": capabilities,
            "context_length": context_length}


def _evaluate_cache(include_embeddings: bool) -> list[dict[str, Any]]:
    from mlxk.cache.evaluate import evaluate_revision
    from mlxk.cache.scan import scan_cache

    types = LISTED_TYPES | ({"embedding"} if include_embeddings else set())
    cards = []
    for repo in scan_cache():
        try:
            rev = repo.default_revision
            if rev is None:
                continue
            ev = evaluate_revision(repo, rev)
        except Exception:  # one broken repo never hides the others
            continue
        desc = ev.description
        if not ev.runtime_compatible or desc.model_type not in types:
            continue
        org = repo.repo_id.split("/", 1)[0] if "/" in repo.repo_id else "local"
        cards.append(_card(repo.repo_id, ev.last_modified, org, desc.model_type,
                           list(desc.capabilities), False, context_length(desc.config)))
    return cards


def resolve_id(name: str, adapters: Adapters | None = None) -> str | None:
    """The id a client's short name or substring stands for (None: no single model); with the
    server's ``adapters``, also ``name+adapter`` and a bare adapter name."""
    from mlxk.cache.resolve import resolve, validate_name
    from mlxk.cache.runnable import is_path_like
    from mlxk.errors import MlxkError, ModelNotFound

    if is_path_like(name):
        return None
    if adapters:
        def base_key(base: str) -> str:
            key = resolve_id(base)
            if key is None:
                raise ModelNotFound(base)
            return key

        try:
            served = adapters.find(name, base_key)
        except MlxkError:
            return None
        if served is not None:
            return served.id
    try:
        validate_name(name.rsplit("@", 1)[0])
        resolved = resolve(name, local_dirs=False)
    except MlxkError:
        return None
    return resolved.name if resolved.cached else None


def cached_models(include_embeddings: bool = False) -> list[dict[str, Any]]:
    from mlxk import config

    key = f"{config.hub_cache()}|{include_embeddings}"
    now = time.monotonic()
    with _memo_lock:
        hit = _memo.get(key)
        if hit and now - hit[0] < TTL_SECONDS:
            return [dict(c) for c in hit[1]]
    cards = _evaluate_cache(include_embeddings)
    with _memo_lock:
        _memo[key] = (now, cards)
    return [dict(c) for c in cards]


def model_list(pool: ModelPool, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cards ``/v1/models`` answers: the cache's, loaded local folders, served adapters.

    ``max_model_len`` is the model's own context length (its config); ``context_length`` is what
    a sequence attends to at once under this server's options: the ``--max-kv-size`` window
    (flag or ``--model-options``) when smaller, whether the model is loaded yet or not.
    """
    by_id = {c["id"]: c for c in cards}
    for key in pool.loaded_names("embedding"):
        if key in by_id:
            by_id[key]["loaded"] = True
    for key in pool.loaded_names("text"):
        entry = pool.entry(key)
        lm = entry.lm if entry else None
        if key not in by_id and pool.adapters.by_id(key) is None:  # a preloaded local dir, a pinned revision
            caps = ["text-generation", *(["vision"] if getattr(lm, "vision", False) else [])]
            by_id[key] = _card(key, time.time(), "local", "chat", caps, True,
                               getattr(lm, "context_length", None))
    for served in pool.adapters.items:
        base = by_id.get(served.base)
        by_id[served.id] = {**(base or _card(served.id, time.time(), "local", "chat",
                                             ["text-generation"], False)),
                            "id": served.id, "owned_by": "local", "loaded": False,
                            "parent": served.base, "adapter": served.name}
    loaded = set(pool.loaded_names())
    for key, card in by_id.items():
        card["loaded"] = key in loaded
        if card.get("model_type") != "embedding":
            _effective_context(card, pool.options(key))
    return [by_id[k] for k in sorted(by_id)]


def _effective_context(card: dict[str, Any], opts: dict[str, Any]) -> None:
    own = card.get("max_model_len", card.get("context_length"))
    window = opts.get("max_kv_size")
    card["max_model_len"] = own
    card["context_length"] = min(own, window) if own and window else (own or window)
    if window is not None or opts.get("kv_bits") is not None:
        card["kv_cache"] = {"max_kv_size": window, "kv_bits": opts.get("kv_bits")}
