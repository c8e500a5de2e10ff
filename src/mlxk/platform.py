"""Platform facts, without importing mlx. The only module with ``sys.platform`` checks."""

from __future__ import annotations

import os
import platform as _platform
import sys
from importlib.util import find_spec


def system_name() -> str:
    """``macOS-arm64``, ``Linux-x86_64``, ..."""
    name = "macOS" if sys.platform == "darwin" else _platform.system()
    return f"{name}-{_platform.machine()}"


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and _platform.machine() == "arm64"


def memory_total_bytes() -> int | None:
    """Physical memory in bytes, or None when the OS will not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    if sys.platform == "darwin":  # pragma: no cover - macOS without SC_PHYS_PAGES
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True)
            return int(out.stdout.strip())
        except (OSError, ValueError):
            return None
    return None


def mlx_device() -> str:
    """The backend MLX will use: ``metal``, ``cuda``, ``cpu``, or ``none`` when mlx is absent.

    Decided from what is installed, so ``--version`` stays fast (no mlx import).
    """
    if find_spec("mlx") is None:
        return "none"
    if is_apple_silicon():
        return "metal"
    if sys.platform == "linux" and find_spec("mlx_cuda") is not None:
        return "cuda"
    return "cpu"


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def cpu_arch() -> str:
    """``x86_64``, ``aarch64``, ``arm64`` ... (lower case)."""
    return _platform.machine().lower()
