"""KV-cache options: a bounded (rotating) cache and a quantized cache, for `run` and `serve`.

``--max-kv-size N`` keeps the last N tokens' keys and values (mlx-lm's ``RotatingKVCache``,
the first 4 tokens kept as attention sinks): memory stops growing at N tokens and the model
sees a sliding window of the conversation. ``--kv-bits {4,8}`` stores keys and values
quantized (``--kv-group-size`` values share a scale, from ``--quantized-kv-start`` tokens on)
in our own cache (``engine.kv_quant``: one per sequence, and a batched one for serve).
``--kv-bits 4`` means 4-bit values and 5-bit keys (``KEY_BITS``): keys carry the outlier
channels, and on SmolLM2 4-bit keys cost +13.0% perplexity on a 500-token text where 5-bit
keys cost +2.1% (8 bits: +0.2%; bench/bench_kv_serve.py). Memory per token and head against float16:
3.2x smaller at "4 bits" (group 64), 1.9x at 8 bits; against float32, 5.8x and 3.6x.

A quantized rotating cache is not built, so the two do not combine (refused up front).
"""

from __future__ import annotations

from typing import Any

from mlxk.engine.types import CacheOptions
from mlxk.errors import ValidationError

KV_BITS = (4, 8)
KV_GROUP_SIZES = (32, 64, 128)
MIN_KV_SIZE = 16
SINK_TOKENS = 4          # first tokens a rotating cache never drops (attention sinks), as mlx-lm
KEY_BITS = {4: 5, 8: 8}  # --kv-bits (the values' width) -> the keys' width (module docstring)


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
        raise ValidationError("--kv-bits and --max-kv-size do not combine (a quantized rotating "
                              "cache is not built); choose one")
    return opts


def generate_kwargs(model: Any, opts: CacheOptions | None) -> dict[str, Any]:
    """Keyword arguments for mlx-lm's ``generate_step`` (single-sequence generation)."""
    if opts is None or not opts.active:
        return {}
    return {"prompt_cache": make_cache(model, opts)}   # a quantized cache switches by itself


def cache_nbytes(cache: list[Any]) -> int:
    """Bytes held by a prompt cache (every layer's keys and values)."""
    return sum(int(getattr(c, "nbytes", 0) or 0) for c in cache)


def make_cache(model: Any, opts: CacheOptions | None) -> list[Any]:
    """A fresh prompt cache for ``model`` under ``opts``.

    Every full-attention layer (a plain ``KVCache``) becomes a ``RotatingKVCache`` under
    ``max_kv_size`` (mlx-lm's own ``make_prompt_cache`` ignores ``max_kv_size`` for models
    that build their own cache, llama among them), or our ``QuantizedKV`` under ``kv_bits``
    (full precision up to ``quantized_kv_start`` tokens, then quantized; in ``serve`` the batch
    merges these into a ``BatchQuantizedKV``). Sliding-window and recurrent layers stay as the
    model made them."""
    from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

    cache = make_prompt_cache(model)
    if opts is None:
        return cache
    if opts.max_kv_size is not None:
        return [RotatingKVCache(max_size=opts.max_kv_size, keep=SINK_TOKENS) if type(c) is KVCache else c
                for c in cache]
    if opts.kv_bits is not None:
        from mlxk.engine.kv_quant import QuantizedKV

        spec = quant_spec(opts)
        return [QuantizedKV(spec) if type(c) is KVCache else c for c in cache]
    return cache


def quant_spec(opts: CacheOptions) -> Any:
    """The key/value widths, group size and start for ``--kv-bits`` (``kv_quant.QuantSpec``)."""
    from mlxk.engine.kv_quant import QuantSpec

    bits = int(opts.kv_bits or 8)
    return QuantSpec(key_bits=KEY_BITS[bits], value_bits=bits, group_size=opts.kv_group_size,
                     start=opts.quantized_kv_start)
