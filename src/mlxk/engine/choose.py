"""Which engine runs a model, and the entry points that dispatch on it.

The documented choice: a model whose ``config.json`` has a ``vision_config``
runs on the vision engine (mlx-vlm) when the ``vision`` extra is installed; it
then answers text-only requests as well as requests with images. Without the
extra, mlx-lm loads such a model's text part where it can (``qwen2_vl``,
``qwen2_5_vl``, ``gemma3`` ...) and a request with images is refused with an
error naming the extra. Every other model runs on the text engine (mlx-lm) and
refuses images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlxk.engine.types import Chunk, GenerationRequest
from mlxk.errors import ValidationError


def has_vision_config(path: Path) -> bool:
    try:
        cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and bool(cfg.get("vision_config"))


def vision_available() -> bool:
    from mlxk.cache.runtime import package_dir

    return package_dir("mlx_vlm") is not None


def uses_vision_engine(path: Path) -> bool:
    return has_vision_config(path) and vision_available()


def load(path: Path, name: str | None = None, adapter_path: str | Path | None = None) -> Any:
    """A ``LoadedModel`` from the engine that runs ``path`` (see the module docstring)."""
    if uses_vision_engine(path):
        if adapter_path is not None:
            raise ValidationError("LoRA adapters (--adapter-path) are not supported with vision "
                                  "models yet", param="adapter_path")
        from mlxk.engine.vision.loader import load_vision_model

        return load_vision_model(path, name=name)
    from mlxk.engine.loader import load_model

    return load_model(path, name=name, adapter_path=adapter_path)


def is_vision(lm: Any) -> bool:
    return bool(getattr(lm, "vision", False))


def count_images(request: GenerationRequest) -> int:
    from mlxk.engine.vision.generate import count_images as count

    return count(request.messages)


def refuse_images(name: str, path: Path, n_images: int) -> None:
    """A model on the text engine got images: say why, and what would help."""
    if not n_images:
        return
    if has_vision_config(path):
        from mlxk.engine.vision import EXTRA_HINT

        raise ValidationError(f"{name} is a vision model, but images need the vision extra "
                              f"(mlx-vlm), which is not installed: {EXTRA_HINT}",
                              param="messages", code="vision_unavailable")
    raise ValidationError(f"{name} is a text-only model; it does not take images",
                          param="messages", code="images_not_supported")


def prepare(lm: Any, request: GenerationRequest) -> Any:
    if is_vision(lm):
        from mlxk.engine.vision.generate import prepare as vision_prepare

        return vision_prepare(lm, request)
    from mlxk.engine.generate import prepare as text_prepare

    refuse_images(lm.name, lm.path, count_images(request))
    return text_prepare(lm, request)


def stream(lm: Any, request: GenerationRequest, prefill_step: int | None = None
           ) -> Iterator[Chunk]:
    """Generate with the engine that runs ``lm``; ``prefill_step`` (text engine only) bounds
    how long a Ctrl-C waits while a prompt is read."""
    if is_vision(lm):
        from mlxk.engine.vision.generate import stream as vision_stream

        return vision_stream(lm, request)
    from mlxk.engine.generate import stream as text_stream

    refuse_images(lm.name, lm.path, count_images(request))
    return text_stream(lm, request, prefill_step=prefill_step)
