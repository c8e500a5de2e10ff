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
DEFAULT_MAX_TOKENS_CAP = 4096      # server requests without max_tokens (OpenAI clients expect long answers)
DEFAULT_RUN_MAX_TOKENS = 1024      # `mlxk run`: a full answer, not a run-on (mlx-lm's CLI uses 256)
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


DEFAULT_HUB_TIMEOUT_S = 10.0


def _seconds(name: str, default: float) -> float:
    value = _env(name)
    try:
        return float(value) if value is not None and float(value) > 0 else default
    except ValueError:
        return default


def hub_timeouts() -> tuple[float, float]:
    """(connect, read) seconds for Hub requests: ``HF_HUB_ETAG_TIMEOUT`` and
    ``HF_HUB_DOWNLOAD_TIMEOUT`` (huggingface_hub's own variables, default 10 s each)."""
    return (_seconds("HF_HUB_ETAG_TIMEOUT", DEFAULT_HUB_TIMEOUT_S),
            _seconds("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_HUB_TIMEOUT_S))


def push_enabled() -> bool:
    """The experimental ``push`` command is off unless ``MLXK2_ENABLE_EXPERIMENTAL_PUSH=1``."""
    return _is_true("MLXK2_ENABLE_EXPERIMENTAL_PUSH")


def debug() -> bool:
    """``MLXK_DEBUG=1`` adds tracebacks to error output."""
    return _is_true("MLXK_DEBUG")


def api_key() -> str | None:
    return _env("MLXK_API_KEY")


def server_host() -> str:
    """``MLXK_HOST`` (like ``OLLAMA_HOST``: for service managers), else 127.0.0.1."""
    return _env("MLXK_HOST") or DEFAULT_HOST


def server_port() -> str | None:
    """``MLXK_PORT`` as written (the CLI checks it is a number)."""
    return _env("MLXK_PORT")


def server_url() -> str:
    """Where ``ps``/``load``/``stop`` find a running server: ``MLXK_SERVER``, else the default bind."""
    return (_env("MLXK_SERVER") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}").rstrip("/")


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


def cpu_kernels_enabled() -> bool:
    """``MLXK_CPU_KERNELS=off`` (or 0/false/no) keeps MLX's own CPU kernels for quantized
    matmuls instead of mlxk's (see ``mlxk.engine.cpu_kernels``)."""
    value = _env("MLXK_CPU_KERNELS")
    return value is None or value.strip().lower() not in {"0", "off", "false", "no", "n", "f"}


def cpu_kernels_dir() -> Path:
    """Where mlxk's CPU kernels are compiled (one folder per mlx version and CPU):
    ``MLXK_CPU_KERNELS_DIR``, else ``$XDG_CACHE_HOME/mlxk/cpu-kernels``, else
    ``~/.cache/mlxk/cpu-kernels``. Not under HF_HOME: the build belongs to the machine."""
    explicit = _env("MLXK_CPU_KERNELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = _env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mlxk" / "cpu-kernels"


def cpu_kernels_compiler() -> str | None:
    """The C++ compiler for mlxk's CPU kernels: ``MLXK_CPU_KERNELS_CXX``, else ``CXX``."""
    return _env("MLXK_CPU_KERNELS_CXX") or _env("CXX")


# --- distributed runs (`--hosts`) ------------------------------------------------------------
def dist_port() -> int | None:
    """``MLXK_DIST_PORT``: the first port of the ranks' ring (default: a free one on loopback)."""
    value = _env("MLXK_DIST_PORT")
    return int(value) if value else None


def dist_verbose() -> bool:
    """``MLXK_DIST_VERBOSE=1``: the ranks' launch and ring backend say what they do."""
    return _env("MLXK_DIST_VERBOSE") == "1"


def dist_heartbeat_s() -> float:
    """``MLXK_DIST_HEARTBEAT``: seconds between rank 0's heartbeats to the other ranks."""
    return float(_env("MLXK_DIST_HEARTBEAT") or "1.0")


def dist_timeout_s() -> float:
    """``MLXK_DIST_TIMEOUT``: the deadline of one collective / one generation step, in seconds."""
    return float(_env("MLXK_DIST_TIMEOUT") or "60")


def dist_timeouts_env() -> dict[str, str]:
    """The two timing variables as set here, passed on to every rank."""
    names = ("MLXK_DIST_TIMEOUT", "MLXK_DIST_HEARTBEAT")
    return {k: v for k in names if (v := _env(k)) is not None}


def mlx_rank() -> int:
    """``MLX_RANK``, set by mlx's launch script in each rank (the backend's own rank wins later)."""
    return int(_env("MLX_RANK") or "0")


def python_path() -> list[str]:
    """The entries of ``PYTHONPATH`` (a local rank gets ours, so it imports this very mlxk)."""
    return [p for p in (_env("PYTHONPATH") or "").split(os.pathsep) if p]


def quiet_transformers() -> None:
    """transformers warns on import that torch is absent (expected with mlx): keep stderr clean."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
