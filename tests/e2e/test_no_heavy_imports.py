"""Management commands must never import mlx, mlx_lm, mlx_vlm, PIL, transformers or torch.

This runs the commands and looks at what they imported. The static side of the same rule (which
modules may reach mlx at all, the layer directions, no cycles) is tests/unit/test_import_rules.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.import_probe import HEAVY, imported_modules


@pytest.mark.parametrize("args", [
    ("list", "--json"), ("list", "--all"), ("show", "Tiny-Chat-4bit", "--files", "--config"),
    ("health", "--verify"), ("rm", "mlx-community/Tiny-Chat-4bit", "--dry-run"), ("prune", "--dry-run"),
    ("--version",),
    ("--version", "--json"), ("show", "tiny-bert", "--json"),
])
def test_no_heavy_imports(tmp_path: Path, model_zoo, args: tuple[str, ...]) -> None:
    r, modules = imported_modules(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    for lazy_net in ("requests", "httpx"):
        assert lazy_net not in modules, lazy_net


@pytest.mark.parametrize("args", [("list", "--json"), ("show", "tiny-qwen2-vl", "--json"),
                                  ("health", "tiny-qwen2-vl")])
def test_vision_models_import_nothing_heavy(tmp_path: Path, tiny_vlm_cached: str,
                                            args: tuple[str, ...]) -> None:
    r, modules = imported_modules(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
