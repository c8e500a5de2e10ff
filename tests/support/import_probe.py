"""Run ``mlxk ARGS`` as a real process and report every top-level module it imported."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.cli import SRC, Result, run_mlxk

HEAVY = ("mlx", "mlx_lm", "mlx_embeddings", "mlx_vlm", "PIL", "transformers", "torch")

# A sitecustomize that records every imported top-level module at interpreter exit.
SITECUSTOMIZE = """
import atexit, json, os, sys
def _dump():
    with open(os.environ["MLXK_TEST_MODULES_OUT"], "w") as f:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), f)
atexit.register(_dump)
"""


def imported_modules(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, set[str]]:
    """(the run's result, the top-level modules its interpreter had imported at exit)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "modules.json"
    probe = {"PYTHONPATH": os.pathsep.join([str(SRC), str(site)]), "MLXK_TEST_MODULES_OUT": str(out)}
    r = run_mlxk(*args, env={**(env or {}), **probe})
    modules = set(json.loads(out.read_text())) if out.exists() else set()
    assert "mlxk" in modules, r.stderr  # the recorder really ran inside the mlxk process
    return r, modules
