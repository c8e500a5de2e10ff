"""``show`` on a LoRA adapter folder (mlx-lm's format): what it adapts and whether its base is here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxk.cache.adapters import AdapterInfo, describe_adapter, is_adapter_dir
from mlxk.cache.resolve import find_repo, is_explicit_path
from mlxk.errors import MlxkError


def adapter_folder(ref: str, resolved_path: Path | None = None) -> Path | None:
    """The adapter folder ``ref`` names: a path on disk, or a cached repo that holds an adapter."""
    if resolved_path is not None:
        return resolved_path if is_adapter_dir(resolved_path) else None
    if (is_explicit_path(ref) or Path(ref).expanduser().is_dir()) and is_adapter_dir(ref):
        return Path(ref).expanduser().resolve()
    return None


def base_in_cache(base: str | None, root: Path | None = None) -> str | None:
    """The cache name of the adapter's base model, when the cache holds exactly that model."""
    if not base or is_explicit_path(base) or Path(base).is_absolute():
        return None
    try:
        repo_id, exact = find_repo(base.rstrip("/"), root)
    except MlxkError:
        return None
    return repo_id if exact else None


def adapter_data(info: AdapterInfo, root: Path | None = None) -> dict[str, Any]:
    """``show``'s data for an adapter: ``{"adapter": {...}}`` (schema: show.json)."""
    base = info.base_model
    cached = base_in_cache(base, root)
    local = bool(base and cached is None and (Path(base).expanduser() / "config.json").is_file())
    num_layers = info.config.get("num_layers", info.config.get("lora_layers"))
    return {"adapter": {
        "path": str(info.path),
        "fine_tune_type": info.fine_tune_type,
        "rank": info.lora("rank"),
        "scale": info.lora("scale"),
        "dropout": info.lora("dropout"),
        "num_layers": num_layers if isinstance(num_layers, int) else None,
        "layers": info.layer_indices,
        "modules": info.modules,
        "size_bytes": info.size_bytes,
        "parameter_count": info.parameter_count,
        "base_model": base,
        "base_in_cache": cached is not None,
        "base_cache_name": cached,
        "base_local_dir": local,
    }}


def show_adapter(folder: Path, config: bool = False, root: Path | None = None) -> dict[str, Any]:
    """``show DIR`` on an adapter; ``config``: include its ``adapter_config.json``."""
    info = describe_adapter(folder)
    data = adapter_data(info, root)
    if config:
        data["config"] = info.config
    return data
