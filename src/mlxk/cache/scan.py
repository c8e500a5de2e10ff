"""Read-only model of the HuggingFace hub cache: repos, revisions, snapshot files, blobs.

The scan never writes and never raises for one bad repo: every oddity it meets
(a dangling ref, a broken symlink, a partial download) is recorded in
``problems`` so ``health`` can report it. Only ``os.scandir``/``lstat``/``stat``
are used, so listing thousands of repos stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlxk.cache import layout

INCOMPLETE_SUFFIX = ".incomplete"


@dataclass(frozen=True)
class CachedFile:
    """One file of a snapshot (usually a relative symlink into ``blobs/``).

    Paths are kept as strings (``spath``/``sblob``) because building thousands of
    ``Path`` objects dominates a cache scan; ``path``/``blob`` give ``Path`` views.
    """

    name: str                 # path relative to the snapshot, with ``/``
    spath: str                # the entry in the snapshot directory
    sblob: str | None         # where it points (lexically normalised), None for a plain file
    size_bytes: int           # 0 when the target is missing
    mtime: float              # of the target, 0.0 when missing
    exists: bool              # the target exists
    outside: bool = False     # the link points outside the repo folder (never followed)

    @property
    def ok(self) -> bool:
        return self.exists and not self.outside

    @property
    def path(self) -> Path:
        return Path(self.spath)

    @property
    def blob(self) -> Path | None:
        return Path(self.sblob) if self.sblob is not None else None

    @property
    def real(self) -> str:
        """The path to read content from (only meaningful when ``ok``)."""
        return self.sblob if self.sblob is not None else self.spath

@dataclass(frozen=True)
class Revision:
    commit: str
    path: Path
    refs: tuple[str, ...]
    files: tuple[CachedFile, ...]

    @property
    def size_bytes(self) -> int:
        """Bytes of this revision's files, each blob counted once."""
        seen: dict[str, int] = {}
        for f in self.files:
            if f.ok:
                seen[f.real] = f.size_bytes
        return sum(seen.values())

    @property
    def last_modified(self) -> float:
        times = [f.mtime for f in self.files if f.ok]
        if times:
            return max(times)
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    @property
    def short(self) -> str:
        return self.commit[:8]

    def file(self, name: str) -> CachedFile | None:
        for f in self.files:
            if f.name == name:
                return f
        return None

    def blob_paths(self) -> set[Path]:
        return {Path(f.sblob) for f in self.files if f.sblob is not None and not f.outside}


@dataclass(frozen=True)
class CachedRepo:
    repo_id: str
    path: Path
    revisions: tuple[Revision, ...]            # newest first
    refs: tuple[tuple[str, str], ...]          # (ref name, commit)
    incomplete_blobs: tuple[Path, ...] = ()
    problems: tuple[str, ...] = field(default=())   # repo-level oddities (dangling refs...)

    @property
    def default_revision(self) -> Revision | None:
        """The commit in ``refs/main``; the newest snapshot only when there is no such ref."""
        main = dict(self.refs).get("main")
        if main is not None:
            for rev in self.revisions:
                if rev.commit == main:
                    return rev
        return self.revisions[0] if self.revisions else None

    def revision(self, commit: str) -> Revision | None:
        for rev in self.revisions:
            if rev.commit == commit:
                return rev
        return None

    @property
    def size_bytes(self) -> int:
        total = 0
        blobs = self.path / "blobs"
        try:
            with os.scandir(blobs) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            pass
        return total


# -- scanning ------------------------------------------------------------------

def list_repo_ids(root: Path | None = None) -> list[str]:
    """Every ``models--org--name`` folder in the cache, as sorted repo ids (no other I/O)."""
    base = layout.cache_root(root)
    try:
        with os.scandir(base) as it:
            names = [e.name for e in it if e.name.startswith(layout.REPO_PREFIX)]
    except OSError:
        return []
    ids = [layout.repo_id_from_folder(n) for n in names]
    return sorted(i for i in ids if i)


def list_commits(repo_id: str, root: Path | None = None) -> list[str]:
    """Commit hashes that have a snapshot directory (sorted)."""
    return _commits(os.path.join(layout.repo_dir(repo_id, root), "snapshots"))


def _commits(snapshots: str) -> list[str]:
    try:
        with os.scandir(snapshots) as it:
            return sorted(e.name for e in it if e.is_dir())
    except OSError:
        return []


def _walk_files(top: str) -> Iterator[tuple[os.DirEntry, str]]:
    """Every non-directory entry below ``top`` with its ``/``-joined relative name; never follows links."""
    stack = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, prefix + e.name + "/"))
            else:
                yield e, prefix + e.name


def read_refs(repo_dir: Path) -> list[tuple[str, str]]:
    """``[(ref, commit)]`` from ``refs/`` (nested refs such as ``refs/pr/1`` included)."""
    refs: list[tuple[str, str]] = []
    for e, rel in _walk_files(os.path.join(repo_dir, "refs")):
        try:
            fd = os.open(e.path, os.O_RDONLY)
            try:
                commit = os.read(fd, 4096).decode("utf-8").strip()
            finally:
                os.close(fd)
        except (OSError, UnicodeDecodeError):
            commit = ""
        refs.append((rel, commit))
    return sorted(refs)


def _scan_files(snapshot: str, repo_dir: Path) -> tuple[CachedFile, ...]:
    repo_real = os.path.normpath(str(repo_dir))
    out = [_file_entry(e, rel, repo_real) for e, rel in _walk_files(snapshot)]
    out.sort(key=lambda f: f.name)
    return tuple(out)


def _file_entry(e: os.DirEntry, rel: str, repo_real: str) -> CachedFile:
    path = e.path
    if e.is_symlink():
        try:
            target = os.readlink(e.path)
        except OSError:
            return CachedFile(rel, path, None, 0, 0.0, False)
        blob = os.path.normpath(os.path.join(os.path.dirname(e.path), target))
        outside = not blob.startswith(repo_real + os.sep)
        if outside:
            return CachedFile(rel, path, blob, 0, 0.0, os.path.lexists(blob), outside=True)
        try:
            st = os.stat(blob)
        except OSError:
            return CachedFile(rel, path, blob, 0, 0.0, False)
        return CachedFile(rel, path, blob, st.st_size, st.st_mtime, True)
    try:
        st = e.stat(follow_symlinks=False)
    except OSError:
        return CachedFile(rel, path, None, 0, 0.0, False)
    return CachedFile(rel, path, None, st.st_size, st.st_mtime, True)


def scan_repo(repo_id: str, root: Path | None = None) -> CachedRepo:
    """Scan one repo folder. Never raises; problems are recorded on the result."""
    return _scan_repo(repo_id, layout.cache_root(root))


def _scan_repo(repo_id: str, base: Path) -> CachedRepo:
    repo_dir = base / layout.repo_folder_name(repo_id)
    problems: list[str] = []
    commits = _commits(os.path.join(repo_dir, "snapshots"))
    if not commits and not os.path.isdir(repo_dir):  # only stat when something is off
        return CachedRepo(repo_id, repo_dir, (), (), (), ("repo folder is not a directory",))
    refs = read_refs(repo_dir)
    by_commit: dict[str, list[str]] = {}
    for ref, commit in refs:
        by_commit.setdefault(commit, []).append(ref)
    revisions = []
    snaps = os.path.join(repo_dir, "snapshots")
    for commit in commits:
        snap = os.path.join(snaps, commit)
        revisions.append(Revision(commit, Path(snap), tuple(by_commit.get(commit, ())),
                                  _scan_files(snap, repo_dir)))
    if len(revisions) > 1:
        revisions.sort(key=_snapshot_mtime, reverse=True)
    for ref, commit in refs:
        if commit not in commits:
            problems.append(f"dangling ref '{ref}' -> {commit[:12] or '(empty)'} (no snapshot)")
    if not commits:
        problems.append("no snapshots")
    incomplete = _incomplete_blobs(os.path.join(repo_dir, "blobs"))
    return CachedRepo(repo_id, repo_dir, tuple(revisions), tuple(refs), incomplete, tuple(problems))


def _snapshot_mtime(rev: Revision) -> float:
    try:
        return rev.path.stat().st_mtime
    except OSError:
        return 0.0


def _incomplete_blobs(blobs: str) -> tuple[Path, ...]:
    try:
        with os.scandir(blobs) as it:
            found = [e.path for e in it if e.name.endswith(INCOMPLETE_SUFFIX)]
    except OSError:
        return ()
    return tuple(Path(p) for p in sorted(found))


def scan_cache(root: Path | None = None, pattern: str | None = None) -> list[CachedRepo]:
    """All model repos in the cache (optionally those whose name contains ``pattern``), sorted."""
    base = layout.cache_root(root)
    ids = list_repo_ids(base)
    if pattern:
        needle = pattern.lower()
        ids = [i for i in ids if needle in i.lower()]
    return [_scan_repo(i, base) for i in ids]
