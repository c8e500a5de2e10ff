"""Place a local model directory into the cache exactly as huggingface_hub would lay it out.

Used by ``mlxk convert --cache`` and by tests. The commit hash is synthetic (a
digest of the file manifest), so importing the same files twice is idempotent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from mlxk.cache import layout


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def blob_name(path: Path, rel: str) -> str:
    """sha256 for LFS-type files, git blob sha1 otherwise (as the Hub names them)."""
    if layout.is_lfs_name(rel):
        return file_sha256(path)
    return git_blob_sha1(path.read_bytes())


def import_directory(src: Path, repo_id: str, root: Path | None = None,
                     commit: str | None = None, ref: str = "main", move: bool = False) -> str:
    """Copy (or move) every file under ``src`` into the cache as ``repo_id``; return the commit.

    Blobs are written to a temporary name and renamed, so a reader never sees a
    half-written blob under its final name.
    """
    src = Path(src)
    files = sorted(p for p in src.rglob("*") if p.is_file() and ".cache" not in p.relative_to(src).parts)
    names = {p.relative_to(src).as_posix(): blob_name(p, p.relative_to(src).as_posix()) for p in files}
    if commit is None:
        manifest = "\n".join(f"{k} {v}" for k, v in sorted(names.items())).encode()
        commit = hashlib.sha1(manifest).hexdigest()
    blobs = layout.blobs_dir(repo_id, root)
    snap = layout.snapshots_dir(repo_id, root) / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for p in files:
        rel = p.relative_to(src).as_posix()
        blob = blobs / names[rel]
        if not blob.exists():
            tmp = blob.with_name(blob.name + ".mlxk-tmp")
            (shutil.move if move else shutil.copyfile)(str(p), str(tmp))
            os.replace(tmp, blob)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    refs = layout.refs_dir(repo_id, root)
    refs.mkdir(parents=True, exist_ok=True)
    if ref:
        (refs / ref).write_text(commit)
    return commit
