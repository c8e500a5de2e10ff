"""``push <dir> <org/name>`` (experimental): check a model folder, diff it against the Hub, upload it.

Gate: only with ``MLXK2_ENABLE_EXPERIMENTAL_PUSH=1``. Network modes need ``--private`` and
``HF_TOKEN``; repos are created private and an existing public repo is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxk import config
from mlxk.errors import AccessDenied, FeatureDisabled, UsageError, ValidationError
from mlxk.hub import client, upload


def require_enabled() -> None:
    if not config.push_enabled():
        raise FeatureDisabled("push is experimental and disabled; set MLXK2_ENABLE_EXPERIMENTAL_PUSH=1 "
                              "to enable it.")


def _folder(path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ValidationError(f"Not a directory: {path}")
    return folder


def _repo_id(name: str) -> str:
    from mlxk.cache.resolve import validate_name

    validate_name(name)
    if name.count("/") != 1:
        raise ValidationError(f"push needs a full repo id 'org/name', got '{name}'")
    return name


def push(path: str, repo: str, *, private: bool, dry_run: bool = False, check_only: bool = False,
         message: str | None = None) -> tuple[dict[str, Any], bool]:
    """Return (data, ok). ``ok`` is False when the folder checks found problems."""
    require_enabled()
    folder = _folder(path)
    repo_id = _repo_id(repo)
    checks = upload.check_folder(folder)
    files = upload.list_files(folder)
    base: dict[str, Any] = {
        "repo_id": repo_id, "source": str(folder), "private": True, "commit_hash": None,
        "url": None, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
        "changes": None, "checks": checks.to_dict(),
    }
    if check_only:
        verdict = "passed" if checks.ok else f"failed: {'; '.join(checks.problems)}"
        return {**base, "action": "check_only", "message": f"Local checks {verdict}"}, checks.ok

    if not private:
        raise UsageError("push requires --private (mlxk only creates and writes private repos)")
    if not config.hf_token():
        raise AccessDenied("push needs a write token in HF_TOKEN")
    client.require_online("push")
    visibility = client.repo_is_private(repo_id)
    if visibility is False:
        raise AccessDenied(f"{repo_id} exists and is public; mlxk push only writes private repos.")
    changes = upload.diff(upload.local_files(folder), client.remote_tree(repo_id))
    base["changes"] = changes
    n_add, n_chg, n_del = (len(changes[k]) for k in ("added", "changed", "deleted"))
    summary = f"{n_add} added, {n_chg} changed, {n_del} deleted, {changes['unchanged']} unchanged"
    if dry_run:
        return {**base, "action": "dry_run", "message": f"Dry run for {repo_id}: {summary}"}, checks.ok
    if not checks.ok:
        raise ValidationError(f"Refusing to push {folder}: {'; '.join(checks.problems)}",
                              problems=checks.problems)
    if not (n_add or n_chg or n_del):
        return {**base, "action": "no_changes", "message": f"{repo_id} is up to date ({summary})"}, True
    sha, url = client.upload_folder(repo_id, folder, deletes=[d["path"] for d in changes["deleted"]],
                               message=message or "Upload with mlxk push",
                               ignore_patterns=upload.ignore_patterns())
    return {**base, "action": "uploaded", "commit_hash": sha, "url": url,
            "message": f"Pushed {folder.name} to {repo_id}@{sha[:7]} ({summary})"}, True
