"""A quantized KV cache for one sequence (``--kv-bits``), the unit the batch cache is built from.

Keys and values are stored quantized (mlx's affine ``mx.quantize``, one scale and bias per
``group_size`` values of a head vector) and handed to attention dequantized, so the model's
ordinary attention runs on them; only the stored state shrinks. Keys and values need not share
a width: keys carry the outlier channels that 4 bits ruin (on SmolLM2 a 4-bit key cache adds
13.8% perplexity, a 4-bit value cache 1.9%), so ``--kv-bits 4`` keeps keys at 5 bits and
values at 4 (``engine.kvcache.KEY_BITS``).

Until the sequence holds more than ``start`` tokens (``--quantized-kv-start``) the cache keeps
full precision, then converts what it holds in one go, as mlx-lm's ``maybe_quantize_kv_cache``.

Stored state is a tuple of arrays sharing the first three axes (batch, head, token): ``(x,)``
at full precision, ``(packed, scales, biases)`` quantized. Zero padding of every part
dequantizes to zeros, so slicing, padding and rolling along the token axis work part by part
(the batch cache in ``kv_quant_batch`` relies on that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import _BaseCache, create_attention_mask

Parts = tuple[mx.array, ...]
GROUPS = (128, 64, 32)
STEP = 256                    # tokens of capacity added at a time, as mlx-lm's KVCache


@dataclass(frozen=True)
class QuantSpec:
    key_bits: int
    value_bits: int
    group_size: int = 64
    start: int = 0            # stay at full precision while the cache holds at most this many

    def group_for(self, dim: int) -> int | None:
        """The group size used for a head of ``dim`` values: the asked one when it divides
        ``dim``, else the largest smaller one that does; None: this head cannot be quantized."""
        for g in (self.group_size, *(g for g in GROUPS if g < self.group_size)):
            if dim % g == 0:
                return g
        return None


def encode(x: mx.array, bits: int, group: int) -> Parts:
    """Quantized parts of ``x`` (scales and biases in ``x``'s dtype)."""
    return tuple(mx.quantize(x, group_size=group, bits=bits))


def decode(parts: Parts, bits: int, group: int) -> mx.array:
    if len(parts) == 1:
        return parts[0]
    return mx.dequantize(*parts, group_size=group, bits=bits)


def tokens(parts: Parts, start: int | None = None, stop: int | None = None) -> Parts:
    """The token range ``start:stop`` of every part."""
    return tuple(p[..., start:stop, :] for p in parts)


def zeros(like: Parts, batch: int, n: int) -> Parts:
    """``n`` tokens of zero state for ``batch`` sequences, shaped like ``like``."""
    return tuple(mx.zeros((batch, p.shape[1], n, p.shape[3]), p.dtype) for p in like)


def grow(parts: Parts | None, new: Parts, used: int) -> Parts:
    """Room for ``new`` after the first ``used`` tokens (capacity grows by whole steps)."""
    n = new[0].shape[2]
    if parts is not None and used + n <= parts[0].shape[2]:
        return parts
    extra = zeros(new, new[0].shape[0], (STEP + n - 1) // STEP * STEP)
    if parts is None:
        return extra
    if used % STEP:
        parts = tokens(parts, None, used)
    return tuple(mx.concatenate([p, e], axis=2) for p, e in zip(parts, extra, strict=True))


def put(parts: Parts, new: Parts, at: int) -> None:
    for p, x in zip(parts, new, strict=True):
        p[..., at:at + x.shape[2], :] = x


class KVQuant:
    """What a single-sequence and a batch quantized cache share: the spec, the per-head group
    size, the full-precision-then-quantized switch, and the key/value (de)coding."""

    keys: Parts | None
    values: Parts | None
    spec: QuantSpec
    quantized: bool
    group: int | None

    def _init_quant(self, spec: QuantSpec) -> None:
        self.spec = spec
        self.quantized = False
        self.group = None

    def _encode(self, keys: mx.array, values: mx.array) -> tuple[Parts, Parts]:
        if not self.quantized:
            return (keys,), (values,)
        return encode(keys, self.spec.key_bits, self.group), encode(values, self.spec.value_bits, self.group)

    def _decode(self, keys: Parts, values: Parts) -> tuple[mx.array, mx.array]:
        return decode(keys, self.spec.key_bits, self.group), decode(values, self.spec.value_bits, self.group)

    def _store(self, keys: mx.array, values: mx.array, at: int) -> None:
        """Write new keys/values at token ``at`` (switching to quantized storage when due)."""
        self._switch(at, keys)
        k, v = self._encode(keys, values)
        self.keys = grow(self.keys, k, at)
        self.values = grow(self.values, v, at)
        put(self.keys, k, at)
        put(self.values, v, at)

    def _switch(self, held: int, incoming: mx.array) -> None:
        """Turn to quantized storage once the cache would hold more than ``spec.start`` tokens."""
        if not self.quantized and held + incoming.shape[2] > self.spec.start:
            self.quantize_held(incoming.shape[-1])

    def quantize_held(self, dim: int) -> None:
        """Switch to quantized storage for heads of ``dim`` values, converting what is held;
        a head no group size divides stays at full precision."""
        if self.quantized:
            return
        self.group = self.spec.group_for(dim)
        if self.group is None:
            return
        self.quantized = True
        if self.keys is not None and self.values is not None:
            self.keys = encode(self.keys[0], self.spec.key_bits, self.group)
            self.values = encode(self.values[0], self.spec.value_bits, self.group)


def part_bytes(*parts: Parts | None) -> int:
    return sum(p.nbytes for ps in parts if ps is not None for p in ps)


class QuantizedKV(KVQuant, _BaseCache):
    """One sequence's quantized KV cache (see module docstring)."""

    def __init__(self, spec: QuantSpec) -> None:
        self.keys = None
        self.values = None
        self.offset = 0
        self._init_quant(spec)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        self._store(keys, values, self.offset)
        self.offset += keys.shape[2]
        return self._decode(tokens(self.keys, None, self.offset), tokens(self.values, None, self.offset))

    @property
    def state(self) -> list[Any]:
        if self.keys is None:
            return []
        return [*tokens(self.keys, None, self.offset), *tokens(self.values, None, self.offset)]

    @state.setter
    def state(self, v: list[Any]) -> None:
        raise NotImplementedError("a quantized KV cache is not restored from a saved state")

    def is_trimmable(self) -> bool:
        return True

    def trim(self, n: int) -> int:
        n = min(self.offset, n)
        self.offset -= n
        return n

    def size(self) -> int:
        return self.offset

    def make_mask(self, *args: Any, **kwargs: Any) -> Any:
        return create_attention_mask(*args, offset=self.offset, **kwargs)

    def empty(self) -> bool:
        return self.keys is None

    @property
    def nbytes(self) -> int:
        return part_bytes(self.keys, self.values)

    @classmethod
    def merge(cls, caches: list[QuantizedKV]) -> Any:
        """The batch cache mlx-lm's ``BatchGenerator`` steps (it calls ``merge`` on the type of
        each layer's first cache)."""
        from mlxk.engine.kv_quant_batch import BatchQuantizedKV

        return BatchQuantizedKV.merge(caches)
