"""mlxk's CPU quantized-matmul kernel against MLX's own, and the model patching around it.

The reference is ``mx.quantized_matmul`` on float32 copies of the same inputs (the same
product, computed exactly in float32). Allowed: 1e-3 relative to the output's largest value,
plus the rounding of the output dtype itself (float16: 2^-11, bfloat16: 2^-8); MLX's own
kernel is further off than that for bfloat16 (it accumulates in bfloat16), which one test pins.
"""

from __future__ import annotations

import pytest

from mlxk.engine import cpu_kernels
from mlxk.engine.cpu_kernels import detect

if detect.not_applicable() is not None:   # arm64, macOS, CPU without AVX2: nothing to test
    pytest.skip(f"CPU kernels not applicable here: {detect.not_applicable()}",
                allow_module_level=True)

import mlx.core as mx
import mlx.nn as nn

from mlxk.engine.cpu_kernels import runtime

ROUNDING = {mx.float32: 0.0, mx.float16: 2.0**-11, mx.bfloat16: 2.0**-8}


@pytest.fixture(scope="module")
def qmm():
    from mlxk.engine.cpu_kernels.build import BuildError

    try:
        return runtime.extension().quantized_matmul
    except BuildError as exc:   # CI must be able to build it: say why it cannot
        pytest.fail(f"the CPU kernels cannot be built on this machine: {exc}")


def _quantized(n: int, k: int, dtype: mx.Dtype, bits: int, group: int, seed: int = 0):
    w = mx.random.normal((n, k), key=mx.random.key(seed)).astype(dtype)
    return mx.quantize(w, group_size=group, bits=bits)


def _reference(x: mx.array, wq: mx.array, s: mx.array, b: mx.array, group: int, bits: int):
    f32 = mx.float32
    return mx.quantized_matmul(x.astype(f32), wq, s.astype(f32), b.astype(f32), transpose=True,
                               group_size=group, bits=bits)


def _rel_err(got: mx.array, want: mx.array) -> float:
    return (mx.abs(got.astype(mx.float32) - want).max() / mx.abs(want).max()).item()


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16], ids=str)
def test_matches_mlx_for_every_bits_group_dtype(qmm, bits: int, group: int, dtype) -> None:
    n, k = 37, 3 * 128        # an odd number of output columns, K covering several groups
    wq, s, b = _quantized(n, k, dtype, bits, group)
    for rows in (1, 2, 3, 4, 5, 16, 17):
        x = mx.random.normal((rows, k), key=mx.random.key(rows)).astype(dtype)
        got = qmm(x, wq, s, b, group, bits)
        assert got.shape == (rows, n)
        assert got.dtype == mx.quantized_matmul(x, wq, s, b, group_size=group, bits=bits).dtype
        assert _rel_err(got, _reference(x, wq, s, b, group, bits)) <= 1e-3 + ROUNDING[dtype]


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
def test_low_precision_activations_with_float32_scales(qmm, dtype) -> None:
    wq, s, b = _quantized(64, 256, mx.float32, 4, 64)
    x = mx.random.normal((3, 256), key=mx.random.key(3)).astype(dtype)
    got = qmm(x, wq, s, b, 64, 4)      # float32 scales: the result is float32, no rounding
    assert got.dtype == mx.float32
    assert _rel_err(got, _reference(x, wq, s, b, 64, 4)) < 2e-4


def test_closer_to_exact_than_mlx_in_bfloat16(qmm) -> None:
    wq, s, b = _quantized(96, 512, mx.bfloat16, 4, 64)
    x = mx.random.normal((4, 512), key=mx.random.key(4)).astype(mx.bfloat16)
    want = _reference(x, wq, s, b, 64, 4)
    ours = _rel_err(qmm(x, wq, s, b, 64, 4), want)
    theirs = _rel_err(mx.quantized_matmul(x, wq, s, b, group_size=64, bits=4), want)
    assert ours <= theirs


def test_activation_outliers_and_zero_groups(qmm) -> None:
    """Activations are quantized per group: one huge value or an all-zero group stays exact."""
    wq, s, b = _quantized(33, 256, mx.float32, 8, 64)
    x = mx.random.normal((2, 256), key=mx.random.key(8))
    x = x.at[0, 3].add(500.0).at[1, 64:128].multiply(0.0)
    got = qmm(x, wq, s, b, 64, 8)
    assert _rel_err(got, _reference(x, wq, s, b, 64, 8)) <= 1e-3


def test_large_m_and_batch_dims(qmm) -> None:
    wq, s, b = _quantized(40, 192, mx.float32, 8, 32)
    x = mx.random.normal((2, 70, 192), key=mx.random.key(5))
    got = qmm(x, wq, s, b, 32, 8)
    assert got.shape == (2, 70, 40)
    assert _rel_err(got, _reference(x, wq, s, b, 32, 8)) <= 1e-3


def test_non_contiguous_inputs(qmm) -> None:
    wq, s, b = _quantized(48, 256, mx.float32, 4, 32)
    base = mx.random.normal((6, 512), key=mx.random.key(6))
    cases = {
        "strided": base[:, ::2],
        "transposed": mx.random.normal((256, 3, 2), key=mx.random.key(7)).transpose(2, 1, 0),
        "broadcast": mx.broadcast_to(base[:1, :256], (5, 256)),
        "offset": base[2:5, 100:356],
    }
    for name, x in cases.items():
        got = qmm(x, wq, s, b, 32, 4)
        assert _rel_err(got, _reference(x, wq, s, b, 32, 4)) <= 1e-3, name
    # weights that are a view (row slice of a bigger quantized matrix)
    got = qmm(base[:2, :256], wq[8:40], s[8:40], b[8:40], 32, 4)
    want = _reference(base[:2, :256], wq[8:40], s[8:40], b[8:40], 32, 4)
    assert _rel_err(got, want) <= 1e-3


def test_bad_arguments_raise_value_errors(qmm) -> None:
    wq, s, b = _quantized(8, 128, mx.float32, 4, 64)
    x = mx.ones((1, 128))
    with pytest.raises(ValueError, match="bits"):
        qmm(x, wq, s, b, 64, 3)
    with pytest.raises(ValueError, match="group_size"):
        qmm(x, wq, s, b, 16, 4)
    with pytest.raises(ValueError, match="last dimension"):
        qmm(mx.ones((1, 64)), wq, s, b, 64, 4)
    with pytest.raises(ValueError, match="scales"):
        qmm(x, wq, s[:, :1], b, 64, 4)


class _Tied(nn.Module):
    """A linear layer and a tied embedding head, like a small language model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(300, 128)
        self.proj = nn.Linear(128, 128, bias=True)
        self.odd = nn.Linear(128, 40, bias=False)   # quantized with 2 bits: stays on MLX

    def __call__(self, ids: mx.array) -> mx.array:
        return self.embed.as_linear(self.proj(self.embed(ids)))


def _tied_model() -> _Tied:
    mx.random.seed(11)
    model = _Tied()
    nn.quantize(model, group_size=64, bits=4,
                class_predicate=lambda path, m: path != "odd" and hasattr(m, "to_quantized"))
    model.odd = nn.QuantizedLinear.from_linear(nn.Linear(128, 40, bias=False), 64, 2)
    mx.eval(model.parameters())
    return model


def test_patching_swaps_covered_layers_and_keeps_outputs() -> None:
    model = _tied_model()
    ids = mx.array([[1, 5, 299, 42]])
    before = model(ids)
    verdict = runtime.patch_model(model)
    assert verdict.state == "active" and verdict.path
    assert type(model.proj) is runtime.KernelQuantizedLinear
    assert type(model.embed) is runtime.KernelQuantizedEmbedding
    assert type(model.odd) is nn.QuantizedLinear            # 2-bit: MLX keeps it
    after = model(ids)
    assert _rel_err(after, before) <= 1e-4
    assert set(dict(model.parameters())) == {"embed", "proj", "odd"}   # same tree
    assert runtime.unpatch_model(model) == 2
    assert type(model.proj) is nn.QuantizedLinear


def test_accelerate_reports_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_kernels, "_current", None)
    model = _tied_model()
    monkeypatch.setattr(runtime, "patch_model", lambda m: (_ for _ in ()).throw(RuntimeError("x")))
    verdict = cpu_kernels.accelerate(model)
    assert verdict.state == "unavailable" and "RuntimeError" in verdict.reason
    assert cpu_kernels.status() == verdict
    assert type(model.proj) is nn.QuantizedLinear


def test_off_switch_leaves_mlx_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_kernels, "_current", None)
    monkeypatch.setenv("MLXK_CPU_KERNELS", "off")
    model = _tied_model()
    verdict = cpu_kernels.accelerate(model)
    assert verdict.state == "off" and "MLXK_CPU_KERNELS=off" in verdict.reason
    assert type(model.proj) is nn.QuantizedLinear


def test_unquantized_model_is_left_alone() -> None:
    model = nn.Sequential(nn.Linear(8, 8))
    assert runtime.patch_model(model).state == "not_applicable"


@pytest.fixture
def fresh_extension(monkeypatch: pytest.MonkeyPatch):
    """``runtime.extension()`` forgets its cached module for the test (and after it)."""
    monkeypatch.setattr(cpu_kernels, "_current", None)
    runtime.extension.cache_clear()
    yield
    runtime.extension.cache_clear()


def test_other_installed_mlx_is_refused(fresh_extension, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "mlx_version", lambda: "0.0.1")
    model = _tied_model()
    verdict = cpu_kernels.accelerate(model)
    assert verdict.state == "unavailable" and "differs" in verdict.reason
    assert type(model.proj) is nn.QuantizedLinear


def test_module_built_for_other_mlx_is_refused(fresh_extension,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlxk.engine.cpu_kernels import build

    real = build.ensure_built(detect.mlx_version())     # a module built for today's mlx ...
    monkeypatch.setattr(detect, "mlx_version", lambda: "9.9.9")
    monkeypatch.setattr(mx, "__version__", "9.9.9")     # ... in a process running another
    monkeypatch.setattr(build, "ensure_built", lambda version: real)
    with pytest.raises(build.BuildError, match="refused: built for mlx"):
        runtime.extension()


def test_cache_key_follows_mlx_version_and_source() -> None:
    a, b = detect.build_dir("0.32.4"), detect.build_dir("0.33.0")
    assert a != b and a.parent == b.parent
    assert detect.source_hash() in a.name and "avx2fma" in a.name


def test_nan_and_inf_activations_propagate(qmm) -> None:
    wq, s, b = _quantized(16, 128, mx.float32, 4, 64)
    x = mx.random.normal((3, 128), key=mx.random.key(9))
    x = x.at[0, 5].add(float("nan")).at[1, 70].add(float("inf"))
    got = qmm(x, wq, s, b, 64, 4)
    assert mx.isnan(got[0]).all().item() and not mx.isfinite(got[1]).any().item()
    assert mx.isfinite(got[2]).all().item()
