"""The README of a converted model: front matter that says where it came from and how it was made.

``base_model`` + ``base_model_relation`` are the Hub's own model-card fields; the
source revision and the settings go under ``mlxk_convert`` so the conversion can be
repeated exactly. ``library_name: mlx`` makes ``list`` label the result MLX.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlxk.engine.convert.checkpoint import Quantization
    from mlxk.operations.convert import Source


def _yaml(value: str) -> str:
    """A YAML scalar: JSON strings are valid YAML and quote whatever needs quoting."""
    return json.dumps(value, ensure_ascii=False)


def source_license(folder: Path) -> str | None:
    """``license:`` of the source's README front matter, to carry over."""
    try:
        head = (folder / "README.md").read_text(encoding="utf-8", errors="replace")[:8192]
    except OSError:
        return None
    if not head.startswith("---"):
        return None
    m = re.search(r"^license:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", head[3:].split("\n---", 1)[0], re.M)
    return m.group(1) if m else None


def model_card(name: str, src: Source, quant: Quantization | None, dtype: str | None,
               mlx_lm_version: str) -> str:
    front = ["---", "library_name: mlx", "pipeline_tag: text-generation", "tags:", "- mlx",
             "- mlxk-convert"]
    license_ = source_license(src.path)
    if license_:
        front.append(f"license: {_yaml(license_)}")
    if src.repo_id:
        front.append(f"base_model: {_yaml(src.repo_id)}")
        if quant is not None:
            front.append("base_model_relation: quantized")
    front += ["mlxk_convert:", f"  source: {_yaml(src.repo_id or str(src.path))}",
              f"  source_revision: {_yaml(src.commit) if src.commit else 'null'}"]
    if quant is not None:
        front += ["  quantization:", f"    bits: {quant.bits}", f"    group_size: {quant.group_size}",
                  f"    mode: {quant.mode}"]
    else:
        front.append("  quantization: null")
    front += [f"  dtype: {dtype or 'null'}", f"  mlx_lm_version: {_yaml(mlx_lm_version)}", "---"]
    origin = f"`{src.repo_id}` (revision `{src.commit}`)" if src.repo_id else f"`{src.path}`"
    how = (f"quantized to {quant.bits} bits ({quant.mode}, group size {quant.group_size})"
           if quant else f"converted to {dtype or 'its own dtype'}")
    return ("\n".join(front) + f"\n\n# {name}\n\nMLX version of {origin}, {how} by `mlxk convert` "
            f"with mlx-lm {mlx_lm_version}.\n")
