"""What ``/v1/models`` lists: healthy, runtime-compatible text models in the cache, plus loaded ones.

Reads the cache only (no mlx import). Results are memoised for a few seconds so
a client polling ``/v1/models`` does not re-hash safetensors headers each time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mlxk.cache.detect import context_length
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


def resolve_id(name: str) -> str | None:
    """The cache id a client's short name or substring stands for (None: no single model)."""
    from mlxk.cache.resolve import resolve, validate_name
    from mlxk.cache.runnable import is_path_like
    from mlxk.errors import MlxkError

    if is_path_like(name):
        return None
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
    by_id = {c["id"]: c for c in cards}
    for key in pool.loaded_names("embedding"):
        if key in by_id:
            by_id[key]["loaded"] = True
    for key in pool.loaded_names("text"):
        entry = pool.entry(key)
        lm = entry.lm if entry else None
        ctx = lm.effective_context if lm is not None else None
        if key in by_id:
            by_id[key]["loaded"] = True
            by_id[key]["context_length"] = ctx or by_id[key]["context_length"]
        else:  # a preloaded local directory or a pinned revision
            caps = ["text-generation", *(["vision"] if getattr(lm, "vision", False) else [])]
            by_id[key] = _card(key, time.time(), "local", "chat", caps, True, ctx)
        opts = getattr(lm, "cache_options", None)
        if opts is not None and opts.active:
            by_id[key]["kv_cache"] = {"max_kv_size": opts.max_kv_size, "kv_bits": opts.kv_bits}
    return [by_id[k] for k in sorted(by_id)]
