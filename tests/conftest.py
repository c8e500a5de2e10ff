"""Every test runs against a temporary HF_HOME with a scrubbed environment.

Fixtures of each area live in ``tests/support/fixtures_*.py`` and are loaded here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.fixtures_cache",
    "tests.support.fixtures_models",
    "tests.support.fixtures_hub",
    "tests.support.fixtures_server",
    "tests.support.fixtures_embed",
    "tests.support.tiny_vlm",
]

_SCRUB_PREFIXES = ("HF_", "HUGGING", "MLXK")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HF_HOME per test; no token, endpoint or mlxk settings leak in."""
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    hf_home = tmp_path / "hf_home"
    (hf_home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Never reach the real Hub: anything not pointed at a local server fails fast.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return hf_home


@pytest.fixture(scope="session", autouse=True)
def cpu_kernels_built() -> None:
    """Compile mlxk's CPU kernels (once per machine and mlx version) before any test loads a
    model, with the scrubbed environment the tests see. Where they do not apply or cannot be
    built this does nothing and the tests run on MLX's own kernels."""
    from mlxk.engine.cpu_kernels import build, detect

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(_SCRUB_PREFIXES):
                mp.delenv(name)
        version = detect.mlx_version()
        if detect.not_applicable() is None and version:
            try:
                build.ensure_built(version)
            except build.BuildError:
                pass


@pytest.fixture
def hub_cache(isolated_env: Path) -> Path:
    return isolated_env / "hub"
