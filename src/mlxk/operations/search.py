"""`search`: models on the Hub whose id matches, each marked when it is already in the cache."""

from __future__ import annotations

from typing import Any

from mlxk.errors import ValidationError

MAX_LIMIT = 1000


def search(query: str, limit: int = 20, sort: str = "downloads", include_all: bool = False,
           quiet: bool = False) -> dict[str, Any]:
    """``{"query", "filter", "sort", "models": [...], "count"}``; MLX models only unless ``include_all``.

    ``quiet``: huggingface_hub's retry warnings stay off stderr (JSON mode).
    """
    from mlxk.cache.scan import list_repo_ids
    from mlxk.hub import client
    from mlxk.hub.search import MLX_FILTER, SORTS, search_models

    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"--limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if sort not in SORTS:
        raise ValidationError(f"unknown sort '{sort}' (choose from {', '.join(SORTS)})")
    if quiet:
        client.quiet()
    found = search_models(query.strip(), limit, sort, mlx_only=not include_all)
    cached = set(list_repo_ids())
    models = [{
        "name": m.repo_id,
        "downloads": m.downloads,
        "likes": m.likes,
        "last_modified": m.last_modified,
        "library": m.library,
        "mlx": m.library == MLX_FILTER or MLX_FILTER in m.tags,
        "cached": m.repo_id in cached,
    } for m in found]
    return {"query": query, "filter": None if include_all else MLX_FILTER, "sort": sort,
            "models": models, "count": len(models)}
