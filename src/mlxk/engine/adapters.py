"""LoRA adapters in mlx-lm's format (``adapter_config.json`` + ``adapters.safetensors``), as
``mlx_lm.lora`` writes them: applied onto a loaded model before it serves (``--adapter-path``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxk.errors import ValidationError

CONFIG = "adapter_config.json"
WEIGHTS = "adapters.safetensors"


def read_config(path: str | Path) -> dict[str, Any]:
    """The adapter's config, or a clear error naming what is missing (no mlx import)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValidationError(f"adapter path {folder} is not a directory")
    missing = [f for f in (CONFIG, WEIGHTS) if not (folder / f).is_file()]
    if missing:
        raise ValidationError(f"{folder} is not an mlx-lm adapter: {', '.join(missing)} missing")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValidationError(f"{folder / CONFIG} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ValidationError(f"{folder / CONFIG} must hold a JSON object")
    return config


def apply(model: Any, path: str | Path) -> Any:
    """Wrap ``model``'s layers with the adapter's LoRA/DoRA layers and load its weights."""
    from mlx_lm.tuner.utils import load_adapters

    read_config(path)
    try:
        return load_adapters(model, str(Path(path).expanduser()))
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValidationError(f"adapter {path} does not fit this model: {exc}") from exc
