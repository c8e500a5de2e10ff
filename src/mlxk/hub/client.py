"""The only module that talks to the Hub through huggingface_hub's network APIs.

Everything huggingface_hub raises is translated into ``mlxk.errors`` (``from exc``, mapping
in ``hub/translate.py``).
Endpoint, token and offline mode come from ``mlxk.config`` and are passed explicitly,
because huggingface_hub freezes its own constants at import time.

Resume: huggingface_hub 2.x downloads each file into a process-unique
``blobs/<etag>.<id>.incomplete`` and deletes it on an ordinary error, but a killed
process leaves it behind. Before a download, ``resume_partials`` continues such a
leftover with a Range request (under the same per-blob file lock huggingface_hub
takes), verifies the digest and moves it into place; ``snapshot_download`` then only
links it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk import config
from mlxk.errors import DownloadFailed, HashNotFound, MlxkError, OfflineError
from mlxk.hub.translate import model_page, translate  # noqa: F401  (model_page: re-export)

RESUME_GRANULARITY = 1024 * 1024
_HEX_PREFIX = re.compile(r"^[0-9a-f]{4,39}$")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    etag: str  # blob name in the cache: sha256 for LFS files, git sha1 otherwise
    lfs: bool


@dataclass(frozen=True)
class RemoteRevision:
    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]
    gated: bool = False
    private: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_size(self) -> int:
        return sum({f.etag: f.size for f in self.files}.values())


def require_online(what: str = "This command") -> None:
    if config.hf_offline():
        raise OfflineError(f"{what} needs the Hub, but HF_HUB_OFFLINE is set. "
                           "Unset HF_HUB_OFFLINE (or set it to 0) to go online.")


def quiet() -> None:
    """--json: huggingface_hub's warnings (retries...) stay off stderr."""
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _token() -> str | None:
    return config.hf_token()


def api() -> Any:
    from huggingface_hub import HfApi

    from mlxk import __version__

    return HfApi(endpoint=config.hf_endpoint(), token=_token(), library_name="mlxk",
                 library_version=__version__)


def _call(fn: Callable[[], Any], repo_id: str, revision: str | None = None) -> Any:
    try:
        return fn()
    except MlxkError:
        raise
    except Exception as exc:
        raise translate(exc, repo_id, revision) from exc


def repo_exists(repo_id: str) -> bool:
    """True when the Hub shows ``repo_id`` to us (a gated repo counts as existing)."""
    from huggingface_hub import errors as hf

    require_online("Looking up a model")
    try:
        api().model_info(repo_id)
        return True
    except hf.RepositoryNotFoundError:
        return False
    except Exception as exc:
        raise translate(exc, repo_id) from exc


def preflight(repo_id: str, revision: str | None = None) -> RemoteRevision:
    """Resolve ``revision`` on the Hub and prove we may download it. Writes nothing."""
    require_online("pull")
    try:
        info = _call(lambda: api().model_info(repo_id, revision=revision, files_metadata=True),
                     repo_id, revision)
    except HashNotFound:
        if not (revision and _HEX_PREFIX.match(revision)):
            raise
        full = expand_commit_prefix(repo_id, revision)
        info = _call(lambda: api().model_info(repo_id, revision=full, files_metadata=True),
                     repo_id, revision)
    files = _complete(repo_id, info.sha, [_from_sibling(s) for s in info.siblings or []])
    remote = RemoteRevision(repo_id, info.sha, tuple(files), gated=bool(info.gated),
                            private=bool(info.private))
    if remote.gated and remote.files:
        # Model info of a gated repo is public; only a file request tells whether we may read it.
        probe = min(remote.files, key=lambda f: f.size)
        _call(lambda: file_metadata(repo_id, probe.path, remote.commit), repo_id, revision)
    return remote


def _from_sibling(s: Any) -> RemoteFile:
    lfs = s.lfs is not None
    etag = (s.lfs.sha256 if lfs else s.blob_id) or ""
    return RemoteFile(s.rfilename, int(s.size or (s.lfs.size if lfs else 0) or 0), etag, lfs)


def _complete(repo_id: str, commit: str, files: list[RemoteFile]) -> list[RemoteFile]:
    """Fill in the blob ids a mirror or proxy left out of the model info.

    First from the tree listing of the commit, then (for what is still missing) from each
    file's own metadata (a HEAD request: ``X-Linked-Etag`` for LFS files, ``ETag`` otherwise).
    """
    if all(f.etag for f in files):
        return files
    from huggingface_hub.hf_api import RepoFile

    try:
        entries = _call(lambda: list(api().list_repo_tree(repo_id, recursive=True, revision=commit)),
                        repo_id, commit)
        tree = {e.path: e for e in entries if isinstance(e, RepoFile)}
    except MlxkError:
        tree = {}  # no listing either: per-file metadata below
    out = []
    for f in files:
        e = tree.get(f.path)
        if not f.etag and e is not None:
            lfs = e.lfs is not None
            etag = (e.lfs.sha256 if lfs else e.blob_id) or ""
            f = RemoteFile(f.path, f.size or int(e.size or 0), etag, lfs)
        if not f.etag:
            meta = _call(lambda p=f.path: file_metadata(repo_id, p, commit), repo_id, commit)
            etag = str(meta.etag or "").strip('"')
            if not etag:
                raise DownloadFailed(f"the Hub gave no blob id for {f.path} of {repo_id}", model=repo_id)
            f = RemoteFile(f.path, f.size or int(meta.size or 0), etag, len(etag) == 64)
        out.append(f)
    return out


def expand_commit_prefix(repo_id: str, prefix: str) -> str:
    """A commit-hash prefix -> the full commit on the default branch (the Hub's URLs want full ones)."""
    commits = _call(lambda: [c.commit_id for c in api().list_repo_commits(repo_id)], repo_id, prefix)
    hits = [c for c in commits if c.startswith(prefix.lower())]
    if len(hits) == 1:
        return hits[0]
    what = "is ambiguous" if hits else "matches no commit"
    raise HashNotFound(f"Revision '{prefix}' {what} of {repo_id} on the Hub.",
                       available_hashes=(hits or commits)[:20], model=repo_id)


def file_metadata(repo_id: str, path: str, commit: str) -> Any:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, path, revision=commit, endpoint=config.hf_endpoint())
    return get_hf_file_metadata(url, token=_token(), endpoint=config.hf_endpoint())


# ---- disk ------------------------------------------------------------------------------
def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def missing_bytes(remote: RemoteRevision, repo_dir: Path) -> int:
    """Bytes still to fetch: files whose blob is absent, minus what partial blobs already hold."""
    blobs = repo_dir / "blobs"
    need = 0
    for etag, size in {f.etag: f.size for f in remote.files}.items():
        if (blobs / etag).exists():
            continue
        need += max(0, size - max((p.stat().st_size for p in _partials(blobs, etag)), default=0))
    return need


def free_bytes(repo_dir: Path) -> int:
    """Free space on the file system that holds (or will hold) ``repo_dir``."""
    return shutil.disk_usage(_existing_ancestor(repo_dir)).free


def check_disk_space(remote: RemoteRevision, repo_dir: Path) -> int:
    """Raise before anything is written when the revision does not fit; return bytes needed."""
    need = missing_bytes(remote, repo_dir)
    free = free_bytes(repo_dir)
    if need > free:
        raise DownloadFailed(
            f"Not enough disk space for {remote.repo_id}: needs {need} bytes, "
            f"{free} bytes free on {_existing_ancestor(repo_dir)}.",
            model=remote.repo_id, required_bytes=need, free_bytes=free)
    return need


# ---- what arrived ---------------------------------------------------------------------
def arrival_problems(remote: RemoteRevision, cache_dir: Path) -> list[str]:
    """Files of the revision that are not in its snapshot with the size the Hub states."""
    from mlxk.cache.layout import snapshots_dir

    snap = snapshots_dir(remote.repo_id, cache_dir) / remote.commit
    problems = []
    for f in remote.files:
        p = snap / f.path
        if not p.is_file():
            problems.append(f"missing file: {f.path}")
        elif p.stat().st_size != f.size:
            problems.append(f"size mismatch ({p.stat().st_size} != {f.size} bytes): {f.path}")
    return problems


def drop_damaged(remote: RemoteRevision, cache_dir: Path) -> list[str]:
    """Unlink snapshot entries and blobs whose size contradicts the Hub, so they are fetched again.

    Only what is provably wrong goes (a dangling link, a blob of the wrong length), each blob
    under huggingface_hub's per-blob lock. Returns the repaired paths.
    """
    from huggingface_hub.utils import WeakFileLock

    from mlxk.cache.layout import locks_dir, repo_dir

    rdir = repo_dir(remote.repo_id, cache_dir)
    snap = rdir / "snapshots" / remote.commit
    repaired = []
    for f in remote.files:
        link = snap / f.path
        blob = rdir / "blobs" / f.etag
        bad_blob = blob.is_file() and blob.stat().st_size != f.size
        bad_link = link.is_symlink() and (not link.exists() or link.stat().st_size != f.size)
        if not (bad_blob or bad_link):
            continue
        lock = locks_dir(remote.repo_id, cache_dir) / f"{f.etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(lock):
            if blob.is_file() and blob.stat().st_size != f.size:
                blob.unlink()
            if link.is_symlink() and (not link.exists() or link.stat().st_size != f.size):
                link.unlink()
        repaired.append(f.path)
    return repaired


# ---- resume ----------------------------------------------------------------------------
def _partials(blobs: Path, etag: str) -> list[Path]:
    if not blobs.is_dir():
        return []
    return [p for p in blobs.glob(f"{etag}*.incomplete")
            if p.name == f"{etag}.incomplete" or p.name.startswith(f"{etag}.")]


def _digest(path: Path, lfs: bool) -> str:
    h = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _publish(src: Path, dst: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(src, 0o666 & ~umask)
    os.replace(src, dst)


def resume_partials(remote: RemoteRevision, cache_dir: Path, tqdm_class: Any = None) -> int:
    """Finish partial blobs a killed download left behind; return the bytes fetched."""
    from filelock import Timeout
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from mlxk.cache.layout import locks_dir, repo_dir

    blobs = repo_dir(remote.repo_id, cache_dir) / "blobs"
    fetched = 0
    for f in {f.etag: f for f in remote.files}.values():
        parts = _partials(blobs, f.etag)
        if not parts or (blobs / f.etag).exists():
            continue
        lock = locks_dir(remote.repo_id, cache_dir) / f"{f.etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            with WeakFileLock(lock, timeout=5):
                parts = sorted(_partials(blobs, f.etag), key=lambda p: p.stat().st_size)
                if not parts or (blobs / f.etag).exists():
                    continue
                best = parts.pop()
                for stale in parts:
                    stale.unlink(missing_ok=True)
                have = best.stat().st_size
                if have > f.size:
                    best.unlink()
                    continue
                if have < f.size:
                    url = hf_hub_url(remote.repo_id, f.path, revision=remote.commit,
                                     endpoint=config.hf_endpoint())
                    try:
                        with best.open("ab") as out:
                            http_get(url, out, resume_size=have, expected_size=f.size,
                                     headers=build_hf_headers(token=_token(), library_name="mlxk"),
                                     displayed_filename=f.path, tqdm_class=tqdm_class)
                    finally:
                        fetched += best.stat().st_size - have
                if _digest(best, f.lfs) == f.etag:
                    _publish(best, blobs / f.etag)
                else:  # not the bytes we expected: start that file over
                    best.unlink()
        except Timeout:
            continue  # another process is downloading this blob right now
        except MlxkError:
            raise
        except Exception as exc:
            raise translate(exc, remote.repo_id, remote.commit) from exc
    return fetched


# ---- download --------------------------------------------------------------------------
def write_ref(repo_dir: Path, ref: str, commit: str) -> None:
    """``refs/<ref>`` = commit, atomically (what snapshot_download writes for a branch)."""
    path = repo_dir / "refs" / ref
    if path.is_file() and path.read_text() == commit:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, path)


def snapshot(remote: RemoteRevision, cache_dir: Path, *, progress: bool, max_workers: int = 8) -> Path:
    """Download the exact commit with huggingface_hub into ``cache_dir``."""
    from huggingface_hub import constants, snapshot_download

    # huggingface_hub writes a download to disk in DOWNLOAD_CHUNK_SIZE pieces (10 MB by
    # default); smaller pieces mean a killed pull keeps all but the last MiB for the resume.
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, RESUME_GRANULARITY)
    tqdm_class = None if progress else _silent_tqdm()
    path = _call(lambda: snapshot_download(
        remote.repo_id, revision=remote.commit, cache_dir=str(cache_dir),
        endpoint=config.hf_endpoint(), token=_token(), library_name="mlxk",
        max_workers=max_workers, tqdm_class=tqdm_class), remote.repo_id, remote.commit)
    return Path(path)


def _silent_tqdm() -> Any:
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


# ---- upload (push) -------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteEntry:
    path: str
    size: int
    blob_id: str
    sha256: str | None  # set for LFS files


def remote_tree(repo_id: str, revision: str = "main") -> dict[str, RemoteEntry] | None:
    """Files of ``repo_id`` at ``revision``; None when the repo does not exist (for us)."""
    from huggingface_hub import errors as hf
    from huggingface_hub.hf_api import RepoFile

    require_online("push")
    try:
        entries = api().list_repo_tree(repo_id, recursive=True, revision=revision)
        return {e.path: RemoteEntry(e.path, int(e.size or 0), e.blob_id,
                                    e.lfs.sha256 if e.lfs is not None else None)
                for e in entries if isinstance(e, RepoFile)}
    except hf.RevisionNotFoundError:
        return {}  # an empty repo has no branch yet
    except hf.RepositoryNotFoundError as exc:
        if isinstance(exc, hf.GatedRepoError):
            raise translate(exc, repo_id) from exc
        return None
    except Exception as exc:
        raise translate(exc, repo_id) from exc


def repo_is_private(repo_id: str) -> bool | None:
    from huggingface_hub import errors as hf

    try:
        return bool(api().model_info(repo_id).private)
    except hf.RepositoryNotFoundError:
        return None
    except Exception as exc:
        raise translate(exc, repo_id) from exc


def upload_folder(repo_id: str, folder: Path, *, deletes: list[str], message: str,
                  ignore_patterns: list[str]) -> tuple[str, str]:
    """Create ``repo_id`` private if needed; upload ``folder`` and delete ``deletes`` in one commit.

    Returns the commit sha and its URL on the Hub.
    """
    import glob

    require_online("push")
    hub = api()
    _call(lambda: hub.create_repo(repo_id, private=True, exist_ok=True), repo_id)
    info = _call(lambda: hub.upload_folder(
        repo_id=repo_id, folder_path=str(folder), commit_message=message,
        ignore_patterns=ignore_patterns,
        delete_patterns=[glob.escape(p) for p in deletes] or None), repo_id)
    return str(info.oid), str(info.commit_url)
