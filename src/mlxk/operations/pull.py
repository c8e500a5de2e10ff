"""``pull <model>[@rev]``: preflight on the Hub, download the exact revision, health-check it.

Order matters for the cache's safety:
1. name validation, offline check, Hub preflight (model info; a file probe for gated repos)
   and the free-space check: nothing is written to the cache before all of them pass;
2. a healthy cached copy of that commit -> ``already_exists`` (no transfer);
3. leftovers of a killed download are resumed with Range requests, then
   ``snapshot_download`` of the pinned commit fetches the rest;
4. the revision is health-checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlxk import config
from mlxk.cache import layout
from mlxk.errors import DownloadFailed, MlxkError, ModelNotFound, ValidationError
from mlxk.hub import client

_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
_REV = re.compile(r"^[A-Za-z0-9._/-]{1,128}$")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (name, rev); rev is a commit (prefix) or a branch/tag name."""
    if "@" not in ref:
        return ref, None
    name, _, rev = ref.rpartition("@")
    if not rev or not _REV.match(rev) or ".." in rev:
        raise ValidationError(f"Invalid revision '{rev}'")
    return name, rev.lower() if _HEX.match(rev) else rev


def resolve_repo_id(name: str) -> str:
    """``org/name`` as is; a short name is looked up on the Hub (``mlx-community/<name>`` first)."""
    from mlxk.cache.resolve import is_explicit_path, validate_name

    if is_explicit_path(name):
        raise ValidationError(f"pull takes a Hub repo id (org/name), not a path: '{name}'")
    validate_name(name)
    if "/" in name:
        return name
    for candidate in (f"{config.MLX_COMMUNITY_ORG}/{name}", name):
        if client.repo_exists(candidate):
            return candidate
    raise ModelNotFound(f"'{name}' not found on the Hub (tried {config.MLX_COMMUNITY_ORG}/{name} "
                        f"and {name}).", model=name)


def _ref_to_write(rev: str | None, commit: str) -> str | None:
    """The ref snapshot_download would record: the branch/tag asked for, none for a commit."""
    if rev is None:
        return "main"
    if _HEX.match(rev) and commit.startswith(rev.lower()):
        return None
    return rev


def pull(ref: str, *, progress: bool = True, info: Callable[[str], None] | None = None,
         max_workers: int = 8, dry_run: bool = False) -> dict[str, Any]:
    say = info or (lambda _msg: None)
    name, rev = split_ref(ref.strip())
    repo_id = name
    try:
        repo_id = resolve_repo_id(name)
        if dry_run:
            return _plan(repo_id, rev, progress=progress)
        return _pull(repo_id, rev, progress=progress, say=say, max_workers=max_workers)
    except MlxkError as exc:
        status = "access_denied" if exc.code == "access_denied" else "failed"
        exc.extra.setdefault("model", repo_id)
        exc.extra.setdefault("download_status", status)
        raise


def _pull(repo_id: str, rev: str | None, *, progress: bool, say: Callable[[str], None],
          max_workers: int) -> dict[str, Any]:
    cache = config.hub_cache()
    if not progress:
        client.quiet()
    remote = client.preflight(repo_id, rev)
    commit = remote.commit
    rdir = layout.repo_dir(repo_id, cache)
    ref_name = _ref_to_write(rev, commit)

    if rdir.is_dir() and not client.arrival_problems(remote, cache):
        if ref_name:
            client.write_ref(rdir, ref_name, commit)
        return _result(repo_id, "already_exists", commit, 0,
                       _with_health(f"{repo_id}@{commit[:7]} is already in the cache", repo_id,
                                    commit, cache, say))

    need = client.check_disk_space(remote, rdir)
    say(f"Pulling {repo_id}@{commit[:7]} ({_mb(need)} to download)")
    existed = rdir.exists()
    try:
        if ref_name:
            client.write_ref(rdir, ref_name, commit)
        repaired = client.drop_damaged(remote, cache)
        if repaired:
            say(f"Fetching again (damaged in the cache): {', '.join(repaired)}")
        fetched = client.resume_partials(remote, cache)
        if fetched:
            say(f"Resumed partial download ({_mb(fetched)} fetched for partial files)")
        client.snapshot(remote, cache, progress=progress, max_workers=max_workers)
    except (MlxkError, OSError) as exc:
        if not existed:
            _drop_if_nothing_arrived(rdir)
        if isinstance(exc, MlxkError):
            raise
        raise client.translate(exc, repo_id, commit) from exc
    problems = client.arrival_problems(remote, cache)
    if problems:
        raise DownloadFailed(f"Download of {repo_id}@{commit[:7]} is incomplete: {problems[0]}",
                             model=repo_id, commit_hash=commit)
    downloaded = need  # everything missing before the pull is now present
    return _result(repo_id, "success", commit, downloaded,
                   _with_health(f"Downloaded {repo_id}@{commit[:7]} ({_mb(downloaded)})", repo_id,
                                commit, cache, say))


def _plan(repo_id: str, rev: str | None, *, progress: bool) -> dict[str, Any]:
    """``pull --dry-run``: the preflight, then what a pull would fetch; writes nothing."""
    if not progress:
        client.quiet()
    remote = client.preflight(repo_id, rev)
    rdir = layout.repo_dir(repo_id, config.hub_cache())
    files = [{"path": f.path, "size_bytes": f.size, "cached": (rdir / "blobs" / f.etag).is_file()}
             for f in remote.files]
    need = client.missing_bytes(remote, rdir)
    free = client.free_bytes(rdir)
    fits = need <= free
    where = "fits" if fits else f"does NOT fit ({_mb(free)} free)"
    message = (f"Would download {_mb(need)} of {repo_id}@{remote.commit[:7]} "
               f"({_mb(remote.total_size)} in {len(files)} files; {where})")
    return {**_result(repo_id, "dry_run", remote.commit, 0, message), "files": files,
            "total_bytes": remote.total_size, "bytes_to_download": need, "free_bytes": free, "fits": fits}


def _with_health(message: str, repo_id: str, commit: str, cache: Path,
                 say: Callable[[str], None]) -> str:
    """Every file arrived intact; say what ``health`` thinks of the model (a GGUF-only or
    PyTorch repo is a fine download even when it is not a complete MLX model)."""
    from mlxk.operations.health import check_revision

    health = check_revision(repo_id, commit, root=cache)
    if health.status == "healthy":
        return f"{message}; healthy."
    say(f"Warning: {repo_id} health check: {health.reason}")
    return f"{message}; health check: {health.reason}."


def _drop_if_nothing_arrived(rdir: Path) -> None:
    """A pull that created ``rdir`` and failed before any byte of a file landed leaves no trace.

    Anything else (a finished blob, a partial, a snapshot) stays: it is what the next pull resumes.
    """
    import shutil

    blobs = rdir / "blobs"
    snapshots = rdir / "snapshots"
    if (blobs.is_dir() and any(blobs.iterdir())) or (snapshots.is_dir() and any(snapshots.iterdir())):
        return
    shutil.rmtree(rdir, ignore_errors=True)


def _result(repo_id: str, status: str, commit: str, nbytes: int, message: str) -> dict[str, Any]:
    return {"model": repo_id, "download_status": status, "message": message,
            "commit_hash": commit, "bytes_downloaded": nbytes}


def _mb(n: int) -> str:
    from mlxk.output.human import size_str

    return size_str(n)
