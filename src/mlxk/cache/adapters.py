"""LoRA adapter folders in mlx-lm's format (``adapter_config.json`` + ``adapters.safetensors``, what
``mlx_lm.lora`` writes): recognise one and describe it from its files alone. No mlx import.

``mlx_lm.lora`` saves all its training arguments as the config, so ``model`` names the base it was
trained on (a Hub id or a folder), ``fine_tune_type`` is ``lora``/``dora``/``full``, ``num_layers``
the blocks adapted (counted from the last) and ``lora_parameters`` the rank, scale and dropout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxk.errors import ValidationError

CONFIG = "adapter_config.json"
WEIGHTS = "adapters.safetensors"
_LAYER = re.compile(r"\.layers\.(\d+)\.")


def is_adapter_dir(path: str | Path) -> bool:
    """A folder holding an adapter config (the weights may still be missing: ``read_config`` says)."""
    folder = Path(path).expanduser()
    return folder.is_dir() and (folder / CONFIG).is_file() and not (folder / "config.json").is_file()


def read_config(path: str | Path) -> dict[str, Any]:
    """The adapter's config, or a clear error naming what is missing."""
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


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter folder says about itself (``mlxk show DIR``)."""

    path: Path
    config: dict[str, Any]
    size_bytes: int                 # adapters.safetensors
    parameter_count: int | None     # None: the weights file is unreadable
    tensors: tuple[str, ...]        # tensor names in the weights file

    @property
    def base_model(self) -> str | None:
        value = self.config.get("model")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def fine_tune_type(self) -> str:
        return str(self.config.get("fine_tune_type", "lora"))

    def lora(self, key: str) -> Any:
        params = self.config.get("lora_parameters")
        return params.get(key) if isinstance(params, dict) else None

    @property
    def layer_indices(self) -> list[int]:
        """The transformer blocks the weights touch (from the tensor names)."""
        return sorted({int(m.group(1)) for t in self.tensors if (m := _LAYER.search(t))})

    @property
    def modules(self) -> list[str]:
        """Adapted linear layers by their short name (``q_proj``, ``v_proj`` ...)."""
        names = set()
        for t in self.tensors:
            parts = t.rsplit(".", 2)
            if len(parts) == 3 and parts[2] in ("lora_a", "lora_b", "m"):
                names.add(parts[1])
        return sorted(names)


def describe_adapter(path: str | Path) -> AdapterInfo:
    """Read an adapter folder (config + safetensors header); errors name what is wrong."""
    from mlxk.cache.safetensors import HeaderError, read_header

    folder = Path(path).expanduser().resolve()
    config = read_config(folder)
    weights = folder / WEIGHTS
    try:
        header = read_header(weights)
    except HeaderError:
        count, tensors = None, ()
    else:
        tensors = tuple(sorted(header.tensors))
        count = sum(_numel(t.get("shape", [])) for t in header.tensors.values())
    return AdapterInfo(folder, config, weights.stat().st_size, count, tensors)


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
