"""LoRA adapters in mlx-lm's format (``adapter_config.json`` + ``adapters.safetensors``), as
``mlx_lm.lora`` writes them: applied onto a loaded model before it serves (``--adapter-path``)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from mlxk.cache.adapters import CONFIG, WEIGHTS, read_config
from mlxk.engine.types import LoadedModel
from mlxk.errors import ValidationError

__all__ = ["CONFIG", "WEIGHTS", "adapted_copy", "apply", "read_config"]


def apply(model: Any, path: str | Path) -> Any:
    """Wrap ``model``'s layers with the adapter's LoRA/DoRA layers and load its weights."""
    from mlx_lm.tuner.utils import load_adapters

    read_config(path)
    try:
        return load_adapters(model, str(Path(path).expanduser()))
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValidationError(f"adapter {path} does not fit this model: {exc}") from exc


def adapted_copy(lm: LoadedModel, path: str | Path, name: str) -> LoadedModel:
    """``lm`` with the adapter at ``path``, sharing ``lm``'s weights (``serve --lora``): the module
    tree is copied (containers only, no array), the adapter's layers wrap the shared base layers
    and its own weights load into the copy. ``lm`` itself is left as it was."""
    if type(lm) is not LoadedModel:
        raise ValidationError(f"LoRA adapters apply to text models run by mlx-lm; {getattr(lm, 'name', 'the base')} is not one "
                              "(vision and embedding models take none yet)", param="model")
    model = apply(_tree_copy(lm.model), path)
    return dataclasses.replace(lm, model=model, name=name, cache_options=None, draft=None)


def _tree_copy(obj: Any) -> Any:
    """A copy of every module, list and dict of an mlx module tree; arrays and other values shared."""
    import mlx.nn as nn

    if isinstance(obj, nn.Module):
        new = copy.copy(obj)
        new.__dict__.update({k: copy.copy(v) for k, v in vars(obj).items() if isinstance(v, set)})
        for key, value in obj.items():
            dict.__setitem__(new, key, _tree_copy(value))
        return new
    if isinstance(obj, list):
        return [_tree_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_tree_copy(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _tree_copy(v) for k, v in obj.items()}
    return obj
