"""``SamplingParams`` -> mlx-lm sampler and logits processors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlxk.engine.types import SamplingParams
from mlxk.errors import ValidationError


def validate(params: SamplingParams) -> SamplingParams:
    if params.temperature < 0:
        raise ValidationError("temperature must be >= 0", param="temperature")
    if not 0.0 <= params.top_p <= 1.0:
        raise ValidationError("top_p must be in [0, 1]", param="top_p")
    if params.top_k < 0:
        raise ValidationError("top_k must be >= 0", param="top_k")
    if not 0.0 <= params.min_p <= 1.0:
        raise ValidationError("min_p must be in [0, 1]", param="min_p")
    if params.repetition_penalty <= 0:
        raise ValidationError("repetition_penalty must be > 0", param="repetition_penalty")
    return params


def make_sampler(params: SamplingParams) -> Callable[[Any], Any]:
    from mlx_lm.sample_utils import make_sampler as mlx_make_sampler

    validate(params)
    top_p = params.top_p if 0.0 < params.top_p < 1.0 else 0.0   # mlx-lm: 0 = off
    return mlx_make_sampler(temp=params.temperature, top_p=top_p, min_p=params.min_p,
                            top_k=params.top_k)


def make_logits_processors(params: SamplingParams) -> list[Callable[[Any, Any], Any]]:
    from mlx_lm.sample_utils import make_logits_processors as mlx_make_processors

    penalty = params.repetition_penalty if params.repetition_penalty != 1.0 else None
    return list(mlx_make_processors(repetition_penalty=penalty))


def apply_seed(params: SamplingParams) -> None:
    """Seed MLX's global PRNG (single-stream generation)."""
    if params.seed is not None:
        import mlx.core as mx

        mx.random.seed(int(params.seed) % (2**32))
