"""Load the compiled kernels into this process and swap a model's quantized layers to them.

Imports mlx. A swapped layer keeps its parameters and place in the module tree (only its class
changes to a subclass whose ``__call__``/``as_linear`` calls the kernel), so saving, sharding
and ``model.update`` see the same model. Layers the kernel does not cover (other bit widths,
group sizes or quantization modes, subclasses such as sharded layers) stay on MLX's kernel.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from types import ModuleType
from typing import Protocol

import mlx.core as mx
import mlx.nn as nn

from mlxk.engine.cpu_kernels import build, detect
from mlxk.engine.cpu_kernels.detect import Verdict

log = logging.getLogger("mlxk.engine.cpu_kernels")

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
FLOATS = (mx.float32, mx.float16, mx.bfloat16)


class _QuantizedMatmul(Protocol):
    def __call__(self, x: mx.array, w: mx.array, scales: mx.array, biases: mx.array,
                 group_size: int, bits: int) -> mx.array: ...


@lru_cache(maxsize=1)
def extension() -> ModuleType:
    """Build (first time on this machine) and import the extension; ``BuildError`` if not."""
    version = detect.mlx_version()
    if version != mx.__version__:
        raise build.BuildError(f"installed mlx {version} differs from the imported {mx.__version__}")
    path = build.ensure_built(version)
    spec = importlib.util.spec_from_file_location(detect.MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise build.BuildError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise build.BuildError(f"cannot import {path}: {exc}") from exc
    built_for = getattr(module, "built_for_mlx", None)
    if built_for != mx.__version__:
        raise build.BuildError(f"refused: built for mlx {built_for}, running {mx.__version__}")
    _self_test(module.quantized_matmul)
    return module


def _self_test(qmm: _QuantizedMatmul) -> None:
    """One small product against MLX's own kernel: a broken build never touches a model."""
    key = mx.random.key(7)
    w = mx.random.normal((24, 128), key=key)
    x = mx.random.normal((3, 128), key=mx.random.split(key)[0])
    for bits in BITS:
        wq, scales, biases = mx.quantize(w, group_size=64, bits=bits)
        want = mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=bits)
        got = qmm(x, wq, scales, biases, 64, bits)
        err = (mx.abs(got - want).max() / mx.maximum(mx.abs(want).max(), 1e-6)).item()
        if not err < 1e-3:
            raise build.BuildError(f"self-test failed ({bits}-bit: relative error {err:.2e})")


def covered(module: nn.Module) -> bool:
    """A quantized layer (MLX's or already swapped) whose parameters the kernel handles."""
    if not isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
        return False
    return (getattr(module, "mode", "affine") == "affine" and module.bits in BITS
            and module.group_size in GROUP_SIZES and "biases" in module
            and module["weight"].dtype == mx.uint32 and module["weight"].ndim == 2
            and module["scales"].dtype in FLOATS)


def _matmul(layer: nn.Module, x: mx.array) -> mx.array:
    if x.dtype not in FLOATS:
        return mx.quantized_matmul(x, layer["weight"], scales=layer["scales"],
                                   biases=layer["biases"], transpose=True,
                                   group_size=layer.group_size, bits=layer.bits)
    return extension().quantized_matmul(x, layer["weight"], layer["scales"], layer["biases"],
                                        layer.group_size, layer.bits)


class KernelQuantizedLinear(nn.QuantizedLinear):
    """``nn.QuantizedLinear`` whose matmul runs mlxk's CPU kernel."""

    def __call__(self, x: mx.array) -> mx.array:
        y = _matmul(self, x)
        return y + self["bias"] if "bias" in self else y


class KernelQuantizedEmbedding(nn.QuantizedEmbedding):
    """``nn.QuantizedEmbedding`` whose ``as_linear`` (a tied output head) runs the kernel."""

    def as_linear(self, x: mx.array) -> mx.array:
        return _matmul(self, x)


_SWAP: dict[type, type] = {nn.QuantizedLinear: KernelQuantizedLinear,
                           nn.QuantizedEmbedding: KernelQuantizedEmbedding}


def patch_model(model: nn.Module) -> Verdict:
    """Swap every quantized layer the kernel covers; ``BuildError`` if it cannot be built."""
    if mx.default_device() != mx.cpu:
        return Verdict("not_applicable", "MLX's default device is not the CPU")
    layers = [m for _, m in model.named_modules() if type(m) in _SWAP and covered(m)]
    if not layers:
        return Verdict("not_applicable", "the model has no 4/8-bit affine quantized layers")
    ext = extension()
    for layer in layers:
        layer.__class__ = _SWAP[type(layer)]
    log.debug("cpu kernels: %d layers swapped", len(layers))
    return Verdict("active", f"{len(layers)} quantized layers use the AVX2+FMA kernel "
                             f"(mlx {mx.__version__})", ext.__file__)


def unpatch_model(model: nn.Module) -> int:
    """Put MLX's own layers back (for side-by-side comparisons); how many were swapped."""
    back = {v: k for k, v in _SWAP.items()}
    count = 0
    for _, module in model.named_modules():
        if type(module) in back:
            module.__class__ = back[type(module)]
            count += 1
    return count
