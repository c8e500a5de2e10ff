"""Give MLX's Linux CPU backend an optimized BLAS.

The ``mlx[cpu]`` Linux wheel links the netlib *reference* BLAS (``libblas.so.3``); its
``cblas_sgemm`` runs at 1-3 GFLOP/s here, 15-50x slower than OpenBLAS on the same cores,
and every float32 matmul of an encoder goes through it. Loading an OpenBLAS with
``RTLD_GLOBAL`` *before* ``mlx.core`` is imported makes libmlx bind ``cblas_*`` to it
(global scope is searched before the library's own dependencies). No-op on macOS (MLX
uses Accelerate/Metal there), when mlx is already imported, or with ``MLXK_BLAS=reference``;
``MLXK_BLAS=/path/to/libopenblas.so`` picks a library explicitly.
"""

from __future__ import annotations

import ctypes
import glob
import sys
import sysconfig
from pathlib import Path

from mlxk import config

_SYSTEM_GLOBS = ("/usr/lib/*/openblas*/libopenblas*.so*", "/usr/lib/*/libopenblas*.so*",
                 "/usr/lib64/libopenblas*.so*", "/usr/local/lib/libopenblas*.so*")
# OpenBLAS builds that Python packages ship with plain (unprefixed) cblas symbols.
_WHEEL_GLOBS = ("opencv_python.libs/libopenblas*.so*", "cmeel.prefix/lib/libopenblas*.so*",
                "numpy.libs/libopenblas[!6]*.so*")

_loaded: str | None = None


def candidates() -> list[str]:
    found = [p for g in _SYSTEM_GLOBS for p in sorted(glob.glob(g))]
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        found += [p for g in _WHEEL_GLOBS for p in sorted(glob.glob(str(Path(site) / g)))]
    return found


def _try(path: str) -> bool:
    global _loaded
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    if not hasattr(lib, "cblas_sgemm"):
        return False
    _loaded = path
    return True


def use_fast_blas() -> str | None:
    """Load an optimized BLAS for MLX if possible; the library path in use, or None."""
    if _loaded is not None:
        return _loaded
    choice = config.blas_choice()
    if not sys.platform.startswith("linux") or "mlx.core" in sys.modules:
        return None
    if choice and choice.lower() in ("reference", "off", "0", "none"):
        return None
    if choice:
        return choice if _try(choice) else None
    for path in candidates():
        if _try(path):
            return path
    return None


def active() -> str | None:
    return _loaded
