"""Search the Hub's model index with huggingface_hub's ``list_models``.

"MLX models" are what the Hub itself files under MLX: its ``mlx`` filter matches the
library (``library_name: mlx``) or the ``mlx`` tag, as the Hub's model pages do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from mlxk.errors import MlxkError
from mlxk.hub.client import api, require_online
from mlxk.hub.translate import translate_listing

SORTS = {"downloads": "downloads", "likes": "likes", "modified": "last_modified"}
MLX_FILTER = "mlx"
_EXPAND = ["downloads", "likes", "lastModified", "library_name", "tags"]


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    downloads: int
    likes: int
    last_modified: str | None   # ISO-8601 UTC ending in Z
    library: str | None
    tags: tuple[str, ...]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_models(query: str, limit: int, sort: str, mlx_only: bool = True) -> list[HubModel]:
    """Models whose id contains ``query``, best first by ``sort`` (a key of ``SORTS``).

    Raises:
        OfflineError: ``HF_HUB_OFFLINE`` is set.
        AccessDenied / ExecutionError: the Hub refused or could not be reached.
    """
    require_online("search")
    kwargs: dict = {"search": query or None, "sort": SORTS[sort], "limit": limit, "expand": _EXPAND}
    if mlx_only:
        kwargs["filter"] = MLX_FILTER
    try:
        found = list(api().list_models(**kwargs))
    except MlxkError:
        raise
    except Exception as exc:
        raise translate_listing(exc) from exc
    return [HubModel(m.id, int(m.downloads or 0), int(m.likes or 0), _iso(m.last_modified),
                     m.library_name, tuple(m.tags or ())) for m in found]
