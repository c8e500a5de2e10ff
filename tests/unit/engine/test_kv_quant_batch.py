"""The batched quantized KV cache (engine/kv_quant.py, BatchQuantizedKV) against mlx-lm's BatchKVCache.

Every operation mlx-lm's BatchGenerator uses (merge with left padding, decode steps, filter,
extend, extract, prepare/finalize of a right-padded prefill chunk, the mask) is run on both,
fed the same random keys and values: at full precision (a start no batch reaches) the two agree
exactly; quantized they agree to the quantization error (keys and values come back in the
model's dtype), and the bytes held shrink.
The same caches under a real model's batch run end to end in tests/server/test_serve_kv_bits_real.py.
"""

from __future__ import annotations

import copy

import pytest

mx = pytest.importorskip("mlx.core")

from mlx_lm.models.cache import BatchKVCache, KVCache  # noqa: E402

from mlxk.engine.kv_quant import QuantizedKV, QuantSpec  # noqa: E402

HEADS, DIM = 2, 64
SPECS = {"full precision": (QuantSpec(8, 8, 64, start=10**9), 0.0),
         "8 bits": (QuantSpec(8, 8, 64), 0.05),
         "5/4 bits": (QuantSpec(5, 4, 64), 0.6),
         "8 bits from token 20": (QuantSpec(8, 8, 64, start=20), 0.05)}


def kv(batch: int, n: int) -> tuple[mx.array, mx.array]:
    return mx.random.normal((batch, HEADS, n, DIM)), mx.random.normal((batch, HEADS, n, DIM))


def sequences(spec: QuantSpec, lengths: list[int]) -> tuple[list[QuantizedKV], list[KVCache]]:
    ours, ref = [QuantizedKV(spec) for _ in lengths], [KVCache() for _ in lengths]
    for o, r, n in zip(ours, ref, lengths, strict=True):
        if n:
            k, v = kv(1, n)
            o.update_and_fetch(k, v)
            r.update_and_fetch(k, v)
    return ours, ref


def same(ours: tuple[mx.array, mx.array], ref: tuple[mx.array, mx.array], tol: float) -> None:
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        err = float(mx.abs(a - b).max())
        assert err <= tol, err


def step(bo: object, br: BatchKVCache, rows: int, tol: float) -> None:
    k, v = kv(rows, 1)
    same(bo.update_and_fetch(k, v), br.update_and_fetch(k, v), tol)
    assert bo.offset.tolist() == br.offset.tolist()
    assert mx.array_equal(bo.make_mask(1), br.make_mask(1))
    assert mx.array_equal(bo.make_mask(3), br.make_mask(3))


@pytest.mark.parametrize("name", list(SPECS))
def test_batch_operations_match_mlx_lm(name: str) -> None:
    spec, tol = SPECS[name]
    mx.random.seed(0)
    ours, ref = sequences(spec, [5, 12, 0])
    bo, br = QuantizedKV.merge(ours), KVCache.merge(ref)
    assert bo.left_padding.tolist() == br.left_padding.tolist()
    for _ in range(20):
        step(bo, br, 3, tol)
    bo = copy.deepcopy(bo)        # mlx-lm's BatchGenerator and prefix cache deep-copy caches
    bo.filter([0, 2])
    br.filter([0, 2])
    assert (bo.size(), bo.left_padding.tolist()) == (br.size(), br.left_padding.tolist())
    new_o, new_r = sequences(spec, [40])
    bo.extend(QuantizedKV.merge(new_o))
    br.extend(KVCache.merge(new_r))
    assert (bo.size(), bo.left_padding.tolist()) == (br.size(), br.left_padding.tolist())
    step(bo, br, 3, tol)
    for i in range(3):
        eo, er = copy.deepcopy(bo.extract(i)), br.extract(i)
        assert eo.offset == er.offset
        same(eo._decode(eo.keys, eo.values), (er.keys, er.values), tol)
    if spec.start == 0:
        assert bo.quantized and bo.nbytes * 2 < br.nbytes
    bo.trim(2)
    br.trim(2)
    assert bo.offset.tolist() == br.offset.tolist()


@pytest.mark.parametrize("name", list(SPECS))
def test_right_padded_prefill_rolls_like_mlx_lm(name: str) -> None:
    spec, tol = SPECS[name]
    mx.random.seed(1)
    bo, br = QuantizedKV.merge([QuantizedKV(spec), QuantizedKV(spec)]), BatchKVCache([0, 0])
    for n, lengths in ((7, [7, 4]), (30, [30, 30])):
        k, v = kv(2, n)
        for c in (bo, br):
            c.prepare(lengths=lengths, right_padding=[n - x for x in lengths])
            c.update_and_fetch(k, v)
            c.finalize()
        assert bo.left_padding.tolist() == br.left_padding.tolist()
        assert bo.offset.tolist() == br.offset.tolist()
        same(bo.keys_and_values(), br.keys_and_values(), tol)


def test_a_full_precision_sequence_joins_a_quantized_batch() -> None:
    """--quantized-kv-start: a short newcomer is quantized as it joins a converted batch."""
    mx.random.seed(2)
    spec = QuantSpec(8, 8, 64, start=16)
    ours, ref = sequences(spec, [30])
    young_o, young_r = sequences(spec, [3])
    assert ours[0].quantized and not young_o[0].quantized
    bo, br = QuantizedKV.merge(ours), KVCache.merge(ref)
    bo.extend(QuantizedKV.merge(young_o))
    br.extend(KVCache.merge(young_r))
    assert bo.quantized
    step(bo, br, 2, 0.05)
    merged = QuantizedKV.merge([*sequences(spec, [30])[0], *sequences(spec, [3])[0]])
    assert merged.quantized and merged.size() == 30


def test_group_size_falls_back_for_a_head_it_does_not_divide() -> None:
    assert QuantSpec(4, 4, 128).group_for(64) == 64
    assert QuantSpec(4, 4, 64).group_for(96) == 32
    assert QuantSpec(4, 4, 64).group_for(40) is None
    c = QuantizedKV(QuantSpec(4, 4, 64))
    k = mx.random.normal((1, 1, 3, 40))
    out, _ = c.update_and_fetch(k, k)
    assert not c.quantized and mx.array_equal(out, k)     # stays at full precision
