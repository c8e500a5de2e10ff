"""Pure path math for the HuggingFace hub cache layout.

``<cache>/models--{org}--{name}/{blobs,snapshots/<commit>,refs/<ref>}`` and
``<cache>/.locks/models--{org}--{name}/<blob>.lock``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlxk import config

REPO_PREFIX = "models--"
SEP = "--"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Files stored through Git LFS on the Hub (named by sha256 in blobs/); others by git sha1.
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".npz", ".pt", ".pth", ".onnx", ".h5",
                ".msgpack", ".model", ".tiktoken")


def cache_root(root: Path | None = None) -> Path:
    return root if root is not None else config.hub_cache()


def not_a_directory(base: Path) -> str:
    """Why ``base`` cannot be the cache: the first of it and its parents that is a file."""
    for p in (base, *base.parents):
        if p.exists() and not p.is_dir():
            label = "HF_HOME" if p == config.hf_home() else ("HF_HUB_CACHE" if p == config.hub_cache()
                                                             else "a parent of the cache")
            return f"{label} is not a directory: {p}"
    return f"the cache is not a directory: {base}"


def check_root(root: Path | None = None) -> Path:
    """The cache root, or ``ValidationError`` when it (or a parent) is a file, not a folder."""
    from mlxk.errors import ValidationError

    base = cache_root(root)
    if base.exists() and base.is_dir():
        return base
    if any(p.exists() and not p.is_dir() for p in (base, *base.parents)):
        raise ValidationError(not_a_directory(base))
    return base


def repo_folder_name(repo_id: str) -> str:
    """``org/name`` -> ``models--org--name``."""
    return REPO_PREFIX + repo_id.replace("/", SEP)


def repo_id_from_folder(folder: str) -> str | None:
    """``models--org--name`` -> ``org/name``; None for anything that is not a model repo."""
    if not folder.startswith(REPO_PREFIX):
        return None
    return folder[len(REPO_PREFIX):].replace(SEP, "/")


def repo_dir(repo_id: str, root: Path | None = None) -> Path:
    return cache_root(root) / repo_folder_name(repo_id)


def snapshots_dir(repo_id: str, root: Path | None = None) -> Path:
    return repo_dir(repo_id, root) / "snapshots"


def blobs_dir(repo_id: str, root: Path | None = None) -> Path:
    return repo_dir(repo_id, root) / "blobs"


def refs_dir(repo_id: str, root: Path | None = None) -> Path:
    return repo_dir(repo_id, root) / "refs"


def locks_dir(repo_id: str, root: Path | None = None) -> Path:
    return cache_root(root) / ".locks" / repo_folder_name(repo_id)


def is_lfs_name(filename: str) -> bool:
    return filename.lower().endswith(LFS_SUFFIXES)
