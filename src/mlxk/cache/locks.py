"""The per-blob download locks huggingface_hub takes: ``<cache>/.locks/models--org--name/<blob>.lock``.

huggingface_hub locks with ``filelock`` (``flock`` on POSIX), and leaves the
lock *file* behind after releasing it. A lock file is therefore only "held"
while some process has it flocked; we find out by trying a non-blocking flock
ourselves. A lock file nobody holds is stale: it never blocks anything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlxk.cache import layout
from mlxk.errors import LocksPresent

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def repo_lock_paths(repo_id: str, root: Path | None = None) -> list[Path]:
    """Every lock file huggingface_hub may have left for ``repo_id`` (held or stale)."""
    base = layout.locks_dir(repo_id, root)
    out: list[Path] = []
    for dirpath, _dirs, files in os.walk(base):
        out.extend(Path(dirpath) / f for f in files if f.endswith(".lock"))
    return sorted(out)


def _try_lock(path: Path) -> int | None:
    """Open + non-blocking exclusive flock. Returns the fd (caller must close) or None if held."""
    if fcntl is None:  # pragma: no cover
        from filelock import FileLock, Timeout

        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return None
        lock.release()
        return -1
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return -1  # vanished: nobody holds it
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def is_held(path: Path) -> bool:
    """True when another process (or another open file in this one) holds the lock."""
    fd = _try_lock(path)
    if fd is None:
        return True
    if fd >= 0:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return False


def held_locks(repo_id: str, root: Path | None = None) -> list[Path]:
    """Lock files of ``repo_id`` that a live process holds right now."""
    return [p for p in repo_lock_paths(repo_id, root) if is_held(p)]


@contextlib.contextmanager
def hold_repo_locks(repo_id: str, root: Path | None = None, force: bool = False) -> Iterator[list[Path]]:
    """Hold every existing lock of ``repo_id`` for the duration of a deletion.

    Raises ``LocksPresent`` when one is held elsewhere (unless ``force``: then the
    held ones are skipped). Yields the lock paths that are held by us.
    """
    fds: list[tuple[Path, int]] = []
    busy: list[Path] = []
    try:
        for p in repo_lock_paths(repo_id, root):
            fd = _try_lock(p)
            if fd is None:
                busy.append(p)
            elif fd >= 0:
                fds.append((p, fd))
        if busy and not force:
            raise locks_present_error(repo_id, busy)
        yield [p for p, _ in fds]
    finally:
        for _, fd in fds:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def locks_present_error(repo_id: str, busy: list[Path]) -> LocksPresent:
    return LocksPresent(
        f"'{repo_id}' is locked by another process (a download in progress?); "
        f"retry when it finishes or use --force",
        locks=[p.name for p in busy])


def remove_stale(repo_id: str, root: Path | None = None, remove_dir: bool = False) -> list[Path]:
    """Delete lock files of ``repo_id`` that nobody holds; return what was removed.

    With ``remove_dir`` the (then empty) ``.locks/models--org--name`` folder goes too.
    """
    removed: list[Path] = []
    for p in repo_lock_paths(repo_id, root):
        fd = _try_lock(p)
        if fd is None:
            continue
        try:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p)
        finally:
            if fd >= 0:
                os.close(fd)
    if remove_dir:
        base = layout.locks_dir(repo_id, root)
        for dirpath, _dirs, _files in os.walk(base, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    return removed
