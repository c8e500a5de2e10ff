"""Management commands must never import mlx, mlx_lm, mlx_vlm, PIL, transformers or torch.

This runs the commands and looks at what they imported. The static side of the same rule (which
modules may reach mlx at all, the layer directions, no cycles) is tests/unit/test_import_rules.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import run_mlxk

HEAVY = ("mlx", "mlx_lm", "mlx_embeddings", "mlx_vlm", "PIL", "transformers", "torch")

# A sitecustomize that records every imported top-level module at interpreter exit.
SITECUSTOMIZE = """
import atexit, json, os, sys
def _dump():
    with open(os.environ["MLXK_TEST_MODULES_OUT"], "w") as f:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), f)
atexit.register(_dump)
"""


@pytest.mark.parametrize("args", [
    ("list", "--json"), ("list", "--all"), ("show", "Tiny-Chat-4bit", "--files", "--config"),
    ("health", "--verify"), ("rm", "mlx-community/Tiny-Chat-4bit", "--dry-run"), ("--version",),
    ("--version", "--json"), ("show", "tiny-bert", "--json"),
])
def test_no_heavy_imports(tmp_path: Path, model_zoo, args: tuple[str, ...]) -> None:
    assert_light(tmp_path, args)


@pytest.mark.parametrize("args", [("list", "--json"), ("show", "tiny-qwen2-vl", "--json"),
                                  ("health", "tiny-qwen2-vl")])
def test_vision_models_import_nothing_heavy(tmp_path: Path, tiny_vlm_cached: str,
                                            args: tuple[str, ...]) -> None:
    assert_light(tmp_path, args)


def assert_light(tmp_path: Path, args: tuple[str, ...]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "modules.json"
    import os

    from tests.support.cli import SRC

    env = {"PYTHONPATH": os.pathsep.join([str(SRC), str(site)]), "MLXK_TEST_MODULES_OUT": str(out)}
    r = run_mlxk(*args, env=env)
    assert r.returncode == 0, r.stderr
    modules = set(json.loads(out.read_text()))
    assert "mlxk" in modules  # the recorder really ran inside the mlxk process
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    for lazy_net in ("requests", "httpx"):
        assert lazy_net not in modules, lazy_net
