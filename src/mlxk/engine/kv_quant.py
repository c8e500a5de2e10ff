"""Quantized KV caches (``--kv-bits``): one sequence's (``QuantizedKV``, for ``run`` and the
prefix cache) and a running batch's (``BatchQuantizedKV``, for ``serve``).

Keys and values are stored quantized (mlx's affine ``mx.quantize``, one scale and bias per
``group_size`` values of a head vector) and handed to attention dequantized, so the model's
ordinary attention runs on them; only the stored state shrinks. Keys and values need not share
a width: keys carry the outlier channels that 4 bits ruin (on SmolLM2, 4-bit keys and values
cost +13.0% perplexity on a 500-token text, 5-bit keys with 4-bit values +2.1%;
bench/bench_kv_serve.py), so ``--kv-bits 4`` keeps keys at 5 bits and values at 4
(``engine.kvcache.KEY_BITS``).

Until the sequence holds more than ``start`` tokens (``--quantized-kv-start``) the cache keeps
full precision, then converts what it holds in one go, as mlx-lm's ``maybe_quantize_kv_cache``.

Stored state is a tuple of arrays sharing the first three axes (batch, head, token): ``(x,)``
at full precision, ``(packed, scales, biases)`` quantized. Zero padding of every part
dequantizes to zeros, so slicing, padding and rolling along the token axis work part by part
(the batch cache relies on that).

The batch: mlx-lm has no batched quantized cache, so ``BatchQuantizedKV`` keeps mlx-lm's
``BatchKVCache`` contract over quantized storage. mlx-lm's ``BatchGenerator`` builds a batch
cache by calling ``merge`` on the type of each layer's per-sequence cache
(``QuantizedKV.merge`` lands here), and then drives it with
``prepare``/``finalize`` (right-padded prompt chunks rolled into left padding), ``filter``
(sequences leaving), ``extend`` (sequences joining), ``extract`` (one sequence's state back
for the prefix cache), ``trim`` and ``make_mask``. Rows are left-padded: row ``i`` holds its
tokens at ``left_padding[i]:_idx``. Every operation is the one ``BatchKVCache`` does, applied to
each stored part.

``--quantized-kv-start``: the batch holds full precision until its longest row (padding
included) passes the start, then converts every row at once; a sequence joining a quantized
batch is quantized as it joins. Attention sees dequantized keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask
from mlx_lm.models.cache import _BaseCache, create_attention_mask, dynamic_roll

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

    def is_trimmable(self) -> bool:
        return True

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
        return BatchQuantizedKV.merge(caches)


class BatchQuantizedKV(KVQuant, _BaseCache):
    def __init__(self, spec: QuantSpec, left_padding: list[int]) -> None:
        self.keys = None
        self.values = None
        self.left_padding = mx.array(left_padding)
        self.offset = mx.array([-p for p in left_padding])
        self._idx = 0
        self._right_padding: mx.array | None = None
        self._init_quant(spec)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        self._store(keys, values, self._idx)
        self._idx += keys.shape[2]
        self.offset = self.offset + keys.shape[2]
        return self.keys_and_values()

    def keys_and_values(self) -> tuple[mx.array, mx.array]:
        return self._decode(tokens(self.keys, None, self._idx), tokens(self.values, None, self._idx))

    def prepare(self, *, left_padding: list[int] | None = None, lengths: list[int] | None = None,
                right_padding: list[int] | None = None) -> None:
        if left_padding is not None:
            if self.keys is not None:
                raise ValueError("left padding can only be added to an empty batch cache")
            pad = mx.array(left_padding)
            self.left_padding = self.left_padding + pad
            self.offset = self.offset - pad
        if right_padding is not None and max(right_padding) > 0:
            self._right_padding = mx.array(right_padding)

    def finalize(self) -> None:
        """Roll each row's right padding (a shorter prompt chunk) to its left."""
        if self._right_padding is None:
            return
        shift = self._right_padding[:, None]
        if self.keys is not None and self.values is not None:
            self.keys = tuple(dynamic_roll(p, shift, axis=2) for p in self.keys)
            self.values = tuple(dynamic_roll(p, shift, axis=2) for p in self.values)
        self.offset = self.offset - self._right_padding
        self.left_padding = self.left_padding + self._right_padding
        self._right_padding = None

    @property
    def state(self) -> list[Any]:
        return [*(self.keys or ()), *(self.values or ()), self.offset, self.left_padding]

    @state.setter
    def state(self, v: list[Any]) -> None:
        raise NotImplementedError("a batch cache is not restored from a saved state")

    def trim(self, n: int) -> int:
        n = min(self._idx, n)
        self._idx -= n
        self.offset = self.offset - n
        return n

    def make_mask(self, N: int, return_array: bool = False, **kwargs: Any) -> mx.array:
        return create_causal_mask(N, offset=self._idx, left_padding=self.left_padding, **kwargs)

    def filter(self, batch_indices: list[int]) -> None:
        """Keep only the rows ``batch_indices`` (in place), then drop padding all rows share."""
        idx = mx.array(batch_indices)
        if self.keys is not None and self.values is not None:
            self.keys = tuple(p[idx] for p in self.keys)
            self.values = tuple(p[idx] for p in self.values)
        self.offset = self.offset[idx]
        self.left_padding = self.left_padding[idx]
        shared = min(self.left_padding.tolist()) if batch_indices else 0
        if shared > 0:
            if self.keys is not None and self.values is not None:
                self.keys = tokens(self.keys, shared)
                self.values = tokens(self.values, shared)
            self._idx -= shared
            self.left_padding = self.left_padding - shared

    def _align(self, other: BatchQuantizedKV) -> None:
        """Make both caches store the same way: quantized when either is."""
        if self.quantized == other.quantized:
            return
        ref = self if self.quantized else other
        (other if self.quantized else self).adopt(ref)

    def adopt(self, ref: KVQuant) -> None:
        """Quantize this (full precision) cache with ``ref``'s group size."""
        self.group = ref.group
        self.quantized = True
        if self.keys is not None and self.values is not None and self.group is not None:
            self.keys = encode(self.keys[0], self.spec.key_bits, self.group)
            self.values = encode(self.values[0], self.spec.value_bits, self.group)

    def extend(self, other: BatchQuantizedKV) -> None:
        """Append ``other``'s rows (in place), right-aligning both at the longer ``_idx``."""
        self._align(other)
        if self.keys is None and other.keys is None:
            self.left_padding = mx.concatenate([self.left_padding, other.left_padding])
            self.offset = mx.concatenate([self.offset, other.offset])
            return
        ref_k = self.keys if self.keys is not None else other.keys
        ref_v = self.values if self.values is not None else other.values
        end = max(self._idx, other._idx)
        size = max(c.keys[0].shape[2] for c in (self, other) if c.keys is not None)
        rows = [_padded(c, ref_k, ref_v, end, size) for c in (self, other)]
        self.keys = tuple(mx.concatenate(ps, axis=0) for ps in zip(*(r[0] for r in rows), strict=True))
        self.values = tuple(mx.concatenate(ps, axis=0) for ps in zip(*(r[1] for r in rows), strict=True))
        self.offset = mx.concatenate([self.offset, other.offset])
        self.left_padding = mx.concatenate([r[2] for r in rows])
        self._idx = end

    def extract(self, idx: int) -> QuantizedKV:
        """Row ``idx`` as a single-sequence cache (for the prefix cache)."""
        cache = QuantizedKV(self.spec)
        cache.quantized, cache.group = self.quantized, self.group
        if self.keys is not None and self.values is not None:
            start = int(self.left_padding[idx].item())
            cache.keys = tuple(mx.contiguous(p[idx:idx + 1, :, start:self._idx]) for p in self.keys)
            cache.values = tuple(mx.contiguous(p[idx:idx + 1, :, start:self._idx]) for p in self.values)
            cache.offset = self._idx - start
        return cache

    @classmethod
    def merge(cls, caches: list[QuantizedKV]) -> BatchQuantizedKV:
        """One batch cache from single-sequence ones, left-padded to the longest."""
        lengths = [c.offset if c.keys is not None else 0 for c in caches]
        longest = max(lengths)
        batch = cls(caches[0].spec, [longest - n for n in lengths])
        held = [c for c in caches if c.keys is not None and c.offset]
        if not held:
            return batch
        quant = next((c for c in held if c.quantized), None)
        if quant is not None:
            batch.quantized, batch.group = True, quant.group
        keys = [_stored(c, batch, c.keys, batch.spec.key_bits) for c in held]
        values = [_stored(c, batch, c.values, batch.spec.value_bits) for c in held]
        batch.keys = zeros(keys[0], len(caches), longest)
        batch.values = zeros(values[0], len(caches), longest)
        rows = [i for i, c in enumerate(caches) if c.keys is not None and c.offset]
        for i, k, v in zip(rows, keys, values, strict=True):
            n = lengths[i]
            for dst, src in ((batch.keys, k), (batch.values, v)):
                for d, s in zip(dst, src, strict=True):
                    d[i:i + 1, :, longest - n:longest] = s[..., :n, :]
        batch.offset = batch.offset + longest
        batch._idx = longest
        return batch

    def size(self) -> int:
        return self._idx

    def empty(self) -> bool:
        return self.keys is None

    @property
    def nbytes(self) -> int:
        return part_bytes(self.keys, self.values)


def _stored(c: QuantizedKV, batch: BatchQuantizedKV, parts: Parts | None, bits: int) -> Parts:
    """``c``'s held tokens, stored the batch's way (quantized when the batch is)."""
    held = tokens(parts, None, c.offset)
    if batch.quantized and not c.quantized and batch.group is not None:
        return encode(held[0], bits, batch.group)
    return held


def _padded(c: BatchQuantizedKV, ref_k: Parts, ref_v: Parts, end: int,
            size: int) -> tuple[Parts, Parts, mx.array]:
    """``c``'s parts padded so its tokens end at ``end`` in ``size`` slots; its new left padding."""
    rows = c.offset.shape[0]
    k = c.keys if c.keys is not None else zeros(ref_k, rows, 0)
    v = c.values if c.values is not None else zeros(ref_v, rows, 0)
    left = end - c._idx
    right = size - k[0].shape[2] - left
    if right < 0:
        k, v = tokens(k, None, right), tokens(v, None, right)
        right = 0
    if left or right:
        width = [(0, 0), (0, 0), (left, right), (0, 0)]
        k = tuple(mx.pad(p, width) for p in k)
        v = tuple(mx.pad(p, width) for p in v)
    return k, v, c.left_padding + left
