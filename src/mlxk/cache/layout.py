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
