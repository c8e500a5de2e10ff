"""mlxk's CPU kernels for MLX: an AVX2+FMA affine-quantized matmul for Linux x86-64.

MLX's CPU backend multiplies by quantized weights in scalar loops; this extension (C++ in
``csrc/``, compiled on first use into a per-machine cache, see docs/cpu-kernels.md) does the
same product 5-50x faster. ``accelerate(model)`` swaps a loaded model's quantized layers to it
on the CPU device; anything that prevents that (no compiler, failed build, other mlx, arm64,
Metal/CUDA, ``MLXK_CPU_KERNELS=off``) leaves the model on MLX's own kernel, with the reason in
``status()`` (shown by ``mlxk --version``). This module imports no mlx; ``runtime`` does.
"""

from __future__ import annotations

from typing import Protocol

from mlxk.engine.cpu_kernels import detect
from mlxk.engine.cpu_kernels.detect import Verdict

_current: Verdict | None = None   # what accelerate() did in this process


class _Module(Protocol):
    def named_modules(self) -> list[tuple[str, object]]: ...


def status() -> Verdict:
    """The path in use (after a model load in this process) or the one a load would take."""
    if _current is not None:
        return _current
    verdict = detect.not_applicable()
    if verdict is not None:
        return verdict
    version = detect.mlx_version()
    if version is None:
        return Verdict("not_applicable", "mlx is not installed")
    directory = detect.build_dir(version)
    ext = detect.extension_file(directory)
    if ext.is_file():
        return Verdict("ready", f"AVX2+FMA quantized matmul built for mlx {version}", str(ext))
    failed = directory / detect.FAILED_MARKER
    if failed.is_file():
        reason = failed.read_text(encoding="utf-8", errors="replace").strip()
        return Verdict("unavailable", f"pure MLX path: {reason}", str(failed))
    from mlxk.engine.cpu_kernels import build

    try:
        build.toolchain()
    except build.BuildError as exc:
        return Verdict("unavailable", f"pure MLX path: {exc}")
    return Verdict("will_build", f"compiles on the first model load (once per mlx version) "
                                 f"into {directory}")


def accelerate(model: _Module) -> Verdict:
    """Swap ``model``'s quantized layers to the kernels where they apply. Never raises: any
    failure leaves the model as it was (MLX's kernels) and is reported by ``status()``."""
    global _current
    verdict = detect.not_applicable()
    if verdict is None:
        from mlxk.engine.cpu_kernels import build

        try:
            from mlxk.engine.cpu_kernels import runtime

            verdict = runtime.patch_model(model)
        except build.BuildError as exc:
            verdict = Verdict("unavailable", f"pure MLX path: {exc}")
        except Exception as exc:   # never let the fast path break a model load
            verdict = Verdict("unavailable", f"pure MLX path: {type(exc).__name__}: {exc}")
    _current = verdict
    return verdict
