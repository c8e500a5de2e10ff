"""Cache garbage: what ``prune`` may remove, planned read-only, then executed repo by repo.

Garbage is anything no kept snapshot needs and no live process holds:

- ``detached_revision``: a snapshot no ref points to (its blobs go when no kept snapshot
  links them). A repo with no ref at all keeps its newest snapshot: a model fetched by
  commit hash has no ref and is still wanted.
- ``orphan_blob``: a file in ``blobs/`` that no snapshot links to.
- ``incomplete``: a ``*.incomplete`` partial download (only in repos nobody holds a lock on).
- ``dangling_ref``: a ref naming a snapshot that does not exist.
- ``stale_lock``: a lock file in ``.locks/`` nobody holds.
- ``abandoned_repo``: a repo folder with no snapshot at all (a first download that died).

A repo where another process holds any lock is skipped whole: a download in progress
writes blobs before it links them, so its unlinked blobs are not orphans.
Execution reuses ``delete.execute`` (refs, snapshots, blobs, under the repo's locks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlxk.cache import delete, layout, locks, scan
from mlxk.errors import DeletionFailed, LocksPresent, PermissionDenied

DETACHED, ORPHAN, INCOMPLETE = "detached_revision", "orphan_blob", "incomplete"
DANGLING_REF, STALE_LOCK, ABANDONED = "dangling_ref", "stale_lock", "abandoned_repo"


@dataclass(frozen=True)
class PruneItem:
    repo_id: str
    kind: str
    path: Path
    size_bytes: int
    commit: str | None = None


@dataclass(frozen=True)
class RepoPrune:
    """One repo's garbage, as a ``DeletePlan`` for ``delete.execute`` plus the itemised view."""

    repo_id: str
    items: tuple[PruneItem, ...]
    plan: delete.DeletePlan | None        # None: only stale locks (no repo folder to touch)

    @property
    def freed_bytes(self) -> int:
        return sum(i.size_bytes for i in self.items)


@dataclass(frozen=True)
class PrunePlan:
    root: Path
    repos: tuple[RepoPrune, ...]
    skipped: tuple[tuple[str, str], ...]  # (repo_id, why)

    @property
    def items(self) -> list[PruneItem]:
        return [i for r in self.repos for i in r.items]

    @property
    def freed_bytes(self) -> int:
        return sum(r.freed_bytes for r in self.repos)


def _lsize(path: Path | str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _plain_bytes(rev: scan.Revision) -> int:
    """Bytes stored in the snapshot folder itself (files that are not links into ``blobs/``)."""
    return sum(f.size_bytes for f in rev.files if f.sblob is None and f.exists)


def _lock_items(repo_id: str, root: Path) -> list[PruneItem]:
    return [PruneItem(repo_id, STALE_LOCK, p, _lsize(p)) for p in locks.repo_lock_paths(repo_id, root)
            if not locks.is_held(p)]


def _abandoned(repo: scan.CachedRepo, root: Path) -> RepoPrune:
    size = sum(_lsize(b) for b in delete.blob_entries(repo.path))
    plan = delete.DeletePlan(repo.repo_id, repo.path, root, (), True, (), (), (), size)
    items = [PruneItem(repo.repo_id, ABANDONED, repo.path, size), *_lock_items(repo.repo_id, root)]
    return RepoPrune(repo.repo_id, tuple(items), plan)


FileId = tuple[int, int]   # (st_dev, st_ino): a blob's identity however a link spells its path


def _file_id(path: str | Path, follow: bool) -> FileId | None:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _linked_ids(rev: scan.Revision) -> set[FileId]:
    """What this revision's links point at, followed: an absolute or oddly spelled link counts too."""
    ids = (_file_id(f.spath, follow=True) for f in rev.files if f.sblob is not None)
    return {i for i in ids if i is not None}


def plan_repo(repo: scan.CachedRepo, root: Path) -> RepoPrune | None:
    """The garbage of one (unlocked) repo, or None when it has none.

    Blobs are told apart by file identity, not by path, so no spelling of a link target can
    make a blob a kept snapshot uses look unlinked; only entries of ``blobs/`` are ever removed.
    """
    if repo.path.is_symlink():
        return None                      # a linked-in repo is someone else's tree: never touched
    if not repo.revisions:
        return _abandoned(repo, root)
    referenced = {c for _, c in repo.refs}
    kept = [r for r in repo.revisions if r.commit in referenced] or [repo.revisions[0]]
    kept_commits = {r.commit for r in kept}
    detached = [r for r in repo.revisions if r.commit not in kept_commits]
    claimed: set[FileId] = set().union(*(_linked_ids(r) for r in kept))
    owners = [(rev, _linked_ids(rev)) for rev in detached]
    by_rev: dict[str, list[Path]] = {r.commit: [] for r in detached}
    leftovers: list[PruneItem] = []
    for blob in sorted(delete.blob_entries(repo.path)):
        fid = _file_id(blob, follow=False)
        if fid is None or fid in claimed:
            continue
        owner = next((rev for rev, ids in owners if fid in ids), None)
        if owner is not None:
            by_rev[owner.commit].append(blob)
        else:
            kind = INCOMPLETE if blob.name.endswith(scan.INCOMPLETE_SUFFIX) else ORPHAN
            leftovers.append(PruneItem(repo.repo_id, kind, blob, _lsize(blob)))
    items = [PruneItem(repo.repo_id, DETACHED, rev.path,
                       sum(_lsize(b) for b in by_rev[rev.commit]) + _plain_bytes(rev), rev.commit)
             for rev in detached]
    items += leftovers
    commits = {r.commit for r in repo.revisions}
    dangling = [repo.path / "refs" / name for name, c in repo.refs if c not in commits]
    items += [PruneItem(repo.repo_id, DANGLING_REF, p, _lsize(p)) for p in dangling]
    items += _lock_items(repo.repo_id, root)
    if not items:
        return None
    blobs = tuple(b for rev in detached for b in by_rev[rev.commit]) + tuple(i.path for i in leftovers)
    plan = delete.DeletePlan(repo.repo_id, repo.path, root, tuple(r.commit for r in detached), False,
                             tuple(dangling), tuple(r.path for r in detached), blobs, 0)
    return RepoPrune(repo.repo_id, tuple(items), plan)


def _lock_only_repos(root: Path, known: set[str]) -> list[str]:
    """Repo ids that have a ``.locks`` folder but no repo folder any more."""
    try:
        with os.scandir(root / ".locks") as it:
            names = [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    ids = (layout.repo_id_from_folder(n) for n in names)
    return sorted(i for i in ids if i and i not in known)


def plan_prune(root: Path | None = None) -> PrunePlan:
    """Scan the whole cache and list its garbage; writes nothing."""
    # Normalised once: link targets are compared lexically, so a ``..`` in HF_HOME must not
    # make every blob look unlinked.
    root = Path(os.path.abspath(layout.cache_root(root)))
    repos: list[RepoPrune] = []
    skipped: list[tuple[str, str]] = []
    ids = scan.list_repo_ids(root)
    for repo_id in ids:
        busy = locks.held_locks(repo_id, root)
        if busy:
            skipped.append((repo_id, f"another process holds {len(busy)} lock(s) (a download in progress?)"))
            continue
        found = plan_repo(scan.scan_repo(repo_id, root), root)
        if found is not None:
            repos.append(found)
    for repo_id in _lock_only_repos(root, set(ids)):
        stale = _lock_items(repo_id, root)
        if stale:
            repos.append(RepoPrune(repo_id, tuple(stale), None))
    return PrunePlan(root, tuple(repos), tuple(skipped))


def execute(plan: PrunePlan) -> tuple[list[PruneItem], list[tuple[str, str]]]:
    """Remove every planned item; return (removed items, repos skipped: a lock appeared, or the file
    system refused; such a repo may be partly pruned, and a second run finishes it)."""
    done: list[PruneItem] = []
    skipped: list[tuple[str, str]] = []
    for repo in plan.repos:
        try:
            if repo.plan is not None:
                delete.execute(repo.plan)    # also removes the repo's stale locks
            else:
                locks.remove_stale(repo.repo_id, plan.root, remove_dir=True)
        except LocksPresent:
            skipped.append((repo.repo_id, "a download started while pruning; left untouched"))
            continue
        except (PermissionDenied, DeletionFailed) as exc:   # one stubborn repo never stops the rest
            skipped.append((repo.repo_id, exc.message))
            continue
        done.extend(repo.items)
    return done, skipped
