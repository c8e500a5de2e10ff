"""Runtime support is learned from a package's files (find_spec + models/ + ast), never by importing it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlxk.cache import runtime

UTILS = '''
import this_module_does_not_exist  # importing the package would fail loudly

MODEL_REMAPPING = {
    "mistral": "llama",  # a comment
    "odd": "qwen",
}

MODEL_ARCHITECTURE_REMAPPING = {
    ("hybrid", "HybridV3ForCausalLM"): "hybrid_v3",
}

def _get_classes(config):
    raise RuntimeError("never called")
'''


@pytest.fixture
def fake_lm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "fake_lm_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "utils.py").write_text(UTILS)
    for arch in ("llama", "qwen", "hybrid", "hybrid_v3", "base", "cache"):
        (pkg / "models" / f"{arch}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for fn in (runtime.package_dir, runtime.architectures, runtime.remapping):
        fn.cache_clear()
    yield "fake_lm_pkg"
    for fn in (runtime.package_dir, runtime.architectures, runtime.remapping):
        fn.cache_clear()


def test_reads_files_without_importing(fake_lm: str) -> None:
    assert runtime.architectures(fake_lm) == frozenset({"llama", "qwen", "hybrid", "hybrid_v3"})
    simple, by_arch = runtime.remapping(fake_lm)
    assert simple == {"mistral": "llama", "odd": "qwen"}
    assert by_arch == {("hybrid", "HybridV3ForCausalLM"): "hybrid_v3"}
    assert fake_lm not in sys.modules


def test_missing_package() -> None:
    assert runtime.package_dir("no_such_package_xyz") is None
    assert runtime.architectures("no_such_package_xyz") == frozenset()
    assert runtime.remapping("no_such_package_xyz") == ({}, {})


def test_real_mlx_lm_tables_match_the_library() -> None:
    """Cross-check the ast reading against mlx_lm itself (the test process may import it)."""
    import mlx_lm.utils as u

    assert runtime.remapping("mlx_lm") == (u.MODEL_REMAPPING, u.MODEL_ARCHITECTURE_REMAPPING)
    ok, _ = runtime.lm_supports({"model_type": "bailing_hybrid", "architectures": ["BailingMoeV3ForCausalLM"]})
    assert ok
