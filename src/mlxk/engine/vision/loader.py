"""Load a vision-language model with mlx-vlm into a ``VisionModel``.

``VisionModel`` is a ``LoadedModel`` (same token facts, so the text engine's
``SequenceDecoder`` decodes its output unchanged) plus mlx-vlm's processor. Its
``tokenizer`` is mlx-lm's wrapper around the same tokenizer files, which gives
the streaming detokenizer and the end-of-turn ids the text engine uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxk import config as mlxk_config
from mlxk.engine.loader import (
    LoadedModel,
    _context_length,
    _read_config,
    describe_tokens,
    load_error,
)
from mlxk.engine.vision import require


@dataclass
class VisionModel(LoadedModel):
    processor: Any = None
    max_images: int = mlxk_config.MAX_IMAGES_PER_REQUEST
    vision: bool = True


def load_vision_model(path: Path, name: str | None = None) -> VisionModel:
    require()
    from mlx_lm.utils import load_tokenizer
    from mlx_vlm.utils import load as vlm_load

    path = Path(path)
    started = time.perf_counter()
    raw_config = _read_config(path)
    try:
        model, processor = vlm_load(str(path))
        tokenizer = load_tokenizer(path, eos_token_ids=raw_config.get("eos_token_id"))
    except Exception as exc:
        raise load_error(exc, raw_config, name or str(path), engine="mlx-vlm") from exc
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    facts = describe_tokens(tokenizer, raw_config)
    tokenizer.eos_token_ids = facts["eos"]
    return VisionModel(
        model=model, tokenizer=tokenizer, config=raw_config, name=name or str(path), path=path,
        eos_token_ids=facts["eos"], context_length=_context_length(raw_config, tokenizer),
        load_seconds=time.perf_counter() - started, reasoning_format=facts["format"],
        has_chat_template=bool(template), hidden_token_ids=facts["hidden"],
        marker_token_ids=facts["markers"], processor=processor,
    )
