"""LoRA adapters in mlx-lm's format (``adapter_config.json`` + ``adapters.safetensors``), as
``mlx_lm.lora`` writes them: applied onto a loaded model before it serves (``--adapter-path``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxk.cache.adapters import CONFIG, WEIGHTS, read_config
from mlxk.errors import ValidationError

__all__ = ["CONFIG", "WEIGHTS", "apply", "read_config"]


def apply(model: Any, path: str | Path) -> Any:
    """Wrap ``model``'s layers with the adapter's LoRA/DoRA layers and load its weights."""
    from mlx_lm.tuner.utils import load_adapters

    read_config(path)
    try:
        return load_adapters(model, str(Path(path).expanduser()))
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValidationError(f"adapter {path} does not fit this model: {exc}") from exc
