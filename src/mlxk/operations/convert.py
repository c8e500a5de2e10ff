"""`convert`: a GGUF file -> an MLX model directory, optionally imported into the cache."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlxk.errors import ValidationError


def convert(source: str | Path, output: str | Path | None = None, cache_repo: str | None = None,
            force: bool = False, dtype: str | None = None,
            info: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert ``source``; with ``cache_repo`` also import the result into the HF cache.

    Without ``output`` (only allowed with ``cache_repo``) the directory is built in
    a temporary place and moved into the cache.
    """
    from mlxk.engine.convert.gguf import DEFAULT_DTYPE, convert_gguf

    say = info or (lambda _msg: None)
    if output is None and cache_repo is None:
        raise ValidationError("give an output directory, or --cache org/name")
    repo_id = None
    if cache_repo is not None:
        from mlxk.cache.resolve import validate_name

        repo_id = validate_name(cache_repo)
        if "/" not in repo_id:
            raise ValidationError(f"--cache needs an org/name repo id, got '{cache_repo}'")
    tmp_root = None
    if output is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="mlxk-convert-"))
        output = tmp_root / "model"
    try:
        say(f"Converting {source} ...")
        result = convert_gguf(Path(source), Path(output), force=force, dtype=dtype or DEFAULT_DTYPE)
        data = result.as_dict()
        data["cache"] = None
        if repo_id is not None:
            from mlxk.cache.importer import import_directory

            say(f"Importing into the cache as {repo_id} ...")
            commit = import_directory(result.output, repo_id, move=tmp_root is not None)
            data["cache"] = {"repo_id": repo_id, "commit": commit}
        if tmp_root is not None:
            data["output"] = None
        return data
    finally:
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)
