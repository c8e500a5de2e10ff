"""Every environment variable, path and default mlxk uses.

Values are read when a function is called, never frozen at import time, so a
test (or a long-lived server) that changes the environment is always honoured.
No other module reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_KEEP_ALIVE_SECONDS = 300
DEFAULT_MAX_TOKENS_CAP = 4096
MAX_MODEL_NAME_LENGTH = 96
MLX_COMMUNITY_ORG = "mlx-community"
MAX_IMAGES_PER_REQUEST = 8            # images in one request (run --image, server)
IMAGE_URL_TIMEOUT_SECONDS = 10.0      # serve --allow-image-urls: per-image fetch timeout

_TRUE = {"1", "true", "yes", "on", "y", "t"}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _is_true(name: str) -> bool:
    value = _env(name)
    return value is not None and value.strip().lower() in _TRUE


def hf_home() -> Path:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``.

    Same precedence as ``huggingface_hub.constants`` (a test pins the equality).
    """
    home = _env("HF_HOME")
    if home:
        return Path(home).expanduser()
    xdg = _env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def hub_cache() -> Path:
    """The hub cache root: ``HF_HUB_CACHE``, else the legacy variable, else ``hf_home()/hub``."""
    cache = _env("HF_HUB_CACHE") or _env("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    return hf_home() / "hub"


def hf_token() -> str | None:
    return _env("HF_TOKEN") or _env("HUGGING_FACE_HUB_TOKEN")


def hf_endpoint() -> str:
    return (_env("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hf_offline() -> bool:
    return _is_true("HF_HUB_OFFLINE")


def push_enabled() -> bool:
    """The experimental ``push`` command is off unless ``MLXK2_ENABLE_EXPERIMENTAL_PUSH=1``."""
    return _is_true("MLXK2_ENABLE_EXPERIMENTAL_PUSH")


def debug() -> bool:
    """``MLXK_DEBUG=1`` adds tracebacks to error output."""
    return _is_true("MLXK_DEBUG")


def api_key() -> str | None:
    return _env("MLXK_API_KEY")


def json_mode_default() -> bool:
    """``MLXK_JSON=1`` makes ``--json`` the default (handy for scripts)."""
    return _is_true("MLXK_JSON")


def env_value(name: str) -> str | None:
    """Read one variable by name; for the few call sites that pass env through (launchers)."""
    return _env(name)


def blas_choice() -> str | None:
    """``MLXK_BLAS``: a BLAS library path for MLX's CPU matmuls on Linux, or ``reference`` to keep
    the BLAS the mlx wheel bundles (see ``mlxk.engine.blas``)."""
    return _env("MLXK_BLAS")
