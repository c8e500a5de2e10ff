"""KV-cache options: a bounded (rotating) cache and a quantized cache, for `run` and `serve`.

``--max-kv-size N`` keeps the last N tokens' keys and values (mlx-lm's ``RotatingKVCache``,
the first 4 tokens kept as attention sinks): memory stops growing at N tokens and the model
sees a sliding window of the conversation. ``--kv-bits {4,8}`` stores keys and values
quantized (``--kv-group-size`` values share a scale, from ``--quantized-kv-start`` tokens on):
about 3.5x (4 bits) or 1.9x (8 bits) less cache memory than float16/32 at a small quality cost.

mlx-lm cannot quantize a rotating cache, so the two do not combine (refused up front).
"""

from __future__ import annotations

from typing import Any

from mlxk.engine.types import CacheOptions
from mlxk.errors import ValidationError

KV_BITS = (4, 8)
KV_GROUP_SIZES = (32, 64, 128)
MIN_KV_SIZE = 16
SINK_TOKENS = 4          # first tokens a rotating cache never drops (attention sinks), as mlx-lm


def check(opts: CacheOptions) -> CacheOptions:
    """Refuse values and combinations that cannot work, before anything loads."""
    if opts.max_kv_size is not None and opts.max_kv_size < MIN_KV_SIZE:
        raise ValidationError(f"--max-kv-size must be at least {MIN_KV_SIZE} tokens")
    if opts.kv_bits is not None and opts.kv_bits not in KV_BITS:
        raise ValidationError(f"--kv-bits must be one of {', '.join(map(str, KV_BITS))}")
    if opts.kv_group_size not in KV_GROUP_SIZES:
        raise ValidationError(f"--kv-group-size must be one of {', '.join(map(str, KV_GROUP_SIZES))}")
    if opts.quantized_kv_start < 0:
        raise ValidationError("--quantized-kv-start must be 0 or more")
    if opts.kv_bits is not None and opts.max_kv_size is not None:
        raise ValidationError("--kv-bits and --max-kv-size do not combine: mlx-lm cannot quantize a "
                              "rotating cache; choose one")
    return opts


def generate_kwargs(model: Any, opts: CacheOptions | None) -> dict[str, Any]:
    """Keyword arguments for mlx-lm's ``generate_step`` (single-sequence generation)."""
    if opts is None or not opts.active:
        return {}
    out: dict[str, Any] = {"prompt_cache": make_cache(model, opts)}
    if opts.kv_bits is not None:
        out.update(kv_bits=opts.kv_bits, kv_group_size=opts.kv_group_size,
                   quantized_kv_start=opts.quantized_kv_start)
    return out


def cache_nbytes(cache: list[Any]) -> int:
    """Bytes held by a prompt cache (every layer's keys and values)."""
    return sum(int(getattr(c, "nbytes", 0) or 0) for c in cache)


def make_cache(model: Any, opts: CacheOptions | None) -> list[Any]:
    """A fresh prompt cache for ``model`` under ``opts``.

    Every full-attention layer (a plain ``KVCache``) becomes a ``RotatingKVCache`` under
    ``max_kv_size`` (mlx-lm's own ``make_prompt_cache`` ignores ``max_kv_size`` for models
    that build their own cache, llama among them), or a ``QuantizedKVCache`` from the first
    token when ``kv_bits`` is set and ``quantized_kv_start`` is 0 (a later start is converted
    by ``generate_step``). Sliding-window and recurrent layers stay as the model made them."""
    from mlx_lm.models.cache import KVCache, QuantizedKVCache, RotatingKVCache, make_prompt_cache

    cache = make_prompt_cache(model)
    if opts is None:
        return cache
    if opts.max_kv_size is not None:
        return [RotatingKVCache(max_size=opts.max_kv_size, keep=SINK_TOKENS) if type(c) is KVCache else c
                for c in cache]
    if opts.kv_bits is not None and opts.quantized_kv_start == 0:
        return [QuantizedKVCache(group_size=opts.kv_group_size, bits=opts.kv_bits)
                if type(c) is KVCache else c for c in cache]
    return cache
