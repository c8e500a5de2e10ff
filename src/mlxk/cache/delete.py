"""Deleting a model or one revision: plan first, then ``execute`` (refs, snapshots, blobs).

Every path the plan names is checked to lie inside the repo folder by its
*real* parent directory, and symlinks are only ever unlinked, never followed,
so a link pointing out of the cache can never make us delete something else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlxk.cache import layout, locks
from mlxk.cache.scan import CachedRepo
from mlxk.errors import DeletionFailed, PermissionDenied, ValidationError


@dataclass(frozen=True)
class DeletePlan:
    repo_id: str
    repo_dir: Path
    root: Path
    commits: tuple[str, ...]        # revisions that go
    whole_repo: bool
    refs: tuple[Path, ...]
    snapshots: tuple[Path, ...]
    blobs: tuple[Path, ...]
    freed_bytes: int

    @property
    def files(self) -> list[str]:
        base = self.repo_dir
        items = [*self.refs, *self.snapshots, *self.blobs] if not self.whole_repo else [base]
        return [str(p.relative_to(self.root)) if _inside(p, self.root) else str(p) for p in items]


def _inside(path: Path, base: Path) -> bool:
    return os.path.normpath(str(path)).startswith(os.path.normpath(str(base)) + os.sep)


def _lsize(p: Path) -> int:
    try:
        return os.lstat(p).st_size
    except OSError:
        return 0


def blob_entries(repo_dir: Path) -> list[Path]:
    try:
        with os.scandir(repo_dir / "blobs") as it:
            return [Path(e.path) for e in it if not e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def plan_delete(repo: CachedRepo, commit: str | None = None, root: Path | None = None) -> DeletePlan:
    """What deleting ``repo`` (or only revision ``commit``) would remove, and the bytes freed."""
    root = layout.cache_root(root)
    repo_dir = repo.path
    if os.path.normpath(str(repo_dir.parent)) != os.path.normpath(str(root)):
        raise ValidationError(f"Refusing to delete outside the cache: {repo_dir}")
    remaining = [r for r in repo.revisions if commit is not None and r.commit != commit]
    if commit is None or not remaining:
        if repo_dir.is_symlink():  # only the link itself goes; never what it points to
            return DeletePlan(repo.repo_id, repo_dir, root, (), True, (), (), (), 0)
        refs = tuple(repo_dir / "refs" / name for name, _ in repo.refs)
        snaps = tuple(r.path for r in repo.revisions)
        blobs = tuple(blob_entries(repo_dir))
        return DeletePlan(repo.repo_id, repo_dir, root, tuple(r.commit for r in repo.revisions), True,
                          refs, snaps, blobs, sum(_lsize(b) for b in blobs))
    target = repo.revision(commit)
    if target is None:
        raise ValidationError(f"Revision {commit} is not cached for '{repo.repo_id}'")
    keep: set[Path] = set()
    for r in remaining:
        keep |= r.blob_paths()
    blob_dir = os.path.normpath(str(repo_dir / "blobs"))
    blobs = tuple(sorted(b for b in target.blob_paths() - keep
                         if os.path.dirname(os.path.normpath(str(b))) == blob_dir and os.path.lexists(b)))
    refs = tuple(repo_dir / "refs" / name for name, c in repo.refs if c == commit)
    return DeletePlan(repo.repo_id, repo_dir, root, (commit,), False, refs, (target.path,), blobs,
                      sum(_lsize(b) for b in blobs))


def _check_inside(path: Path, plan: DeletePlan) -> None:
    """The real parent folder of ``path`` must be inside the real repo folder (or be the root)."""
    real_root = os.path.realpath(plan.root)
    parent = os.path.realpath(path.parent)
    if plan.whole_repo and path == plan.repo_dir:
        ok = parent == real_root
    else:
        ok = parent.startswith(os.path.realpath(plan.repo_dir) + os.sep) or parent == os.path.realpath(plan.repo_dir)
        ok = ok and parent.startswith(real_root + os.sep)
    if not ok:
        raise DeletionFailed(f"Refusing to delete {path}: it resolves outside the cache")


def _remove(path: Path, plan: DeletePlan) -> None:
    if not os.path.lexists(path):
        return
    _check_inside(path, plan)
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()          # a link is removed, never followed
        else:
            shutil.rmtree(path)    # rmtree does not follow symlinks inside the tree
    except PermissionError as exc:
        raise PermissionDenied(f"Permission denied deleting {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise DeletionFailed(f"Could not delete {path}: {exc.strerror}") from exc


def execute(plan: DeletePlan, force: bool = False) -> int:
    """Delete refs, then snapshots, then blobs (then the folder for a whole repo); return bytes freed.

    Holds the repo's download locks while deleting; raises ``LocksPresent`` when
    another process holds one (unless ``force``). Stale lock files are removed.
    """
    with locks.hold_repo_locks(plan.repo_id, plan.root, force=force):
        for ref in plan.refs:
            _remove(ref, plan)
        for snap in plan.snapshots:
            _remove(snap, plan)
        for blob in plan.blobs:
            _remove(blob, plan)
        if plan.whole_repo:
            _remove(plan.repo_dir, plan)
        else:
            _prune_empty_dirs(plan.repo_dir / "refs")
    locks.remove_stale(plan.repo_id, plan.root, remove_dir=plan.whole_repo)
    return plan.freed_bytes


def _prune_empty_dirs(base: Path) -> None:
    for dirpath, _dirs, _files in os.walk(base, topdown=False):
        if Path(dirpath) != base:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
