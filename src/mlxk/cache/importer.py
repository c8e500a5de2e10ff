"""Place a local model directory into the cache exactly as huggingface_hub would lay it out.

Used by ``mlxk convert --cache`` and by tests. The commit hash is synthetic (a
digest of the file manifest), so importing the same files twice is idempotent.
``publish_directory`` is the all-or-nothing form: it builds the whole repo folder in
a hidden staging folder of the cache and moves it in at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mlxk.cache import layout
from mlxk.errors import ValidationError

STAGING_PREFIX = ".mlxk-import-"


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


def publish_directory(src: Path, repo_id: str, root: Path | None = None, *, replace: bool = False,
                      move: bool = False) -> str:
    """Import ``src`` as ``repo_id`` all at once; return the commit.

    The repo folder (blobs, snapshot, ``refs/main``) is built in a hidden staging
    folder of the cache and renamed into place, so a failure leaves nothing behind
    and a reader never sees half a model. An existing repo is refused unless
    ``replace``: then the new blobs and snapshot move in first and ``refs/main``
    switches to the new commit last (other revisions stay).

    Raises:
        ValidationError: ``repo_id`` is already in the cache and ``replace`` is false.
    """
    base = layout.cache_root(root)
    target = layout.repo_dir(repo_id, base)
    if target.exists() and not replace:
        raise ValidationError(f"{repo_id} is already in the cache (use --force to add the "
                              "conversion as its new main revision)", model=repo_id)
    base.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base))
    try:
        commit = import_directory(src, repo_id, root=stage, move=move)
        staged = layout.repo_dir(repo_id, stage)
        try:
            os.rename(staged, target)
            return commit
        except OSError:
            if not target.is_dir() or not replace:
                raise
        _merge_into(staged, target, commit)
        return commit
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _merge_into(staged: Path, target: Path, commit: str) -> None:
    """Blobs, then the snapshot, then ``refs/main``: each step a rename."""
    (target / "blobs").mkdir(parents=True, exist_ok=True)
    for blob in (staged / "blobs").iterdir():
        if not (target / "blobs" / blob.name).exists():
            os.replace(blob, target / "blobs" / blob.name)
    snap = target / "snapshots" / commit
    if not snap.exists():
        snap.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged / "snapshots" / commit, snap)
    ref = target / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".main.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)
