"""``rm``: resolve -> lock check -> plan -> (dry run | confirm) -> execute (contract section 6).

Several models are handled as one operation: all resolve, pass the lock check and are
planned before anything is asked or deleted; one confirmation names every full repo id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxk.cache import delete, locks, scan
from mlxk.cache.resolve import ResolvedModel, is_explicit_path, resolve
from mlxk.errors import RequiresConfirmation, ValidationError
from mlxk.output.human import size_str

Confirm = Callable[[str, str], bool]


def refuse(question: str, refusal: str) -> bool:
    raise RequiresConfirmation(refusal)


@dataclass
class _Target:
    resolved: ResolvedModel
    commit: str | None        # the revision to delete; None: the whole model
    plan: Any

    @property
    def what(self) -> str:
        repo_id = self.resolved.repo_id
        return f"revision {self.commit[:12]} of '{repo_id}'" if self.commit else f"'{repo_id}'"


def _target(ref: str, force: bool, root: Path | None) -> _Target:
    if is_explicit_path(ref):
        raise ValidationError(f"'{ref}' is a path; rm only deletes models from the cache")
    resolved = resolve(ref, root, local_dirs=False)
    assert resolved.repo_id is not None
    commit = resolved.commit if resolved.revision_explicit else None
    if not force:
        busy = locks.held_locks(resolved.repo_id, root)
        if busy:
            raise locks.locks_present_error(resolved.repo_id, busy)
    repo = scan.scan_repo(resolved.repo_id, root)
    return _Target(resolved, commit, delete.plan_delete(repo, commit, root))


def _data(t: _Target) -> dict[str, Any]:
    return {"model": t.resolved.display, "commit_hash": t.commit or t.resolved.commit,
            "freed_bytes": t.plan.freed_bytes, "files": t.plan.files}


def _execute(t: _Target, force: bool) -> dict[str, Any]:
    freed = delete.execute(t.plan, force=force)
    data = {**_data(t), "freed_bytes": freed}
    if t.commit and not t.plan.whole_repo:
        return {**data, "action": "deleted_revision", "message": f"Deleted {t.what} ({size_str(freed)} freed)"}
    suffix = " (its last revision)" if t.commit else ""
    return {**data, "action": "deleted_revision" if t.commit else "deleted",
            "message": f"Deleted {t.what}{suffix} ({size_str(freed)} freed)"}


def remove_model(ref: str, force: bool = False, dry_run: bool = False, confirm: Confirm | None = None,
                 root: Path | None = None) -> dict[str, Any]:
    """Delete a cached model (or with ``@hash`` one revision). Returns the rm data object."""
    return remove_models([ref], force=force, dry_run=dry_run, confirm=confirm, root=root)


def remove_models(refs: list[str], force: bool = False, dry_run: bool = False,
                  confirm: Confirm | None = None, root: Path | None = None) -> dict[str, Any]:
    """Delete one or several cached models. Returns the rm data object (with ``models`` listing
    each one's result when there are several).

    Without ``force``: a held download lock refuses first (``locks_present``), then ``confirm``
    is asked once, naming every full repo id (it raises ``RequiresConfirmation`` itself when it
    cannot ask). ``dry_run`` resolves exactly as the real run does.
    """
    targets: list[_Target] = []
    for ref in refs:
        t = _target(ref, force, root)
        if not any(o.resolved.repo_id == t.resolved.repo_id and o.commit == t.commit for o in targets):
            targets.append(t)
    if dry_run:
        results = [{**_data(t), "action": "dry_run",
                    "message": f"Would delete {t.what} ({size_str(t.plan.freed_bytes)} freed)"}
                   for t in targets]
        return _combined(results, "dry_run")
    if not force:
        ask = confirm or refuse
        what = ", ".join(t.what for t in targets)
        total = sum(t.plan.freed_bytes for t in targets)
        refusal = f"Deleting {what} needs confirmation: run on a terminal or pass --force"
        if not ask(f"Delete {what} ({size_str(total)})?", refusal):
            raise RequiresConfirmation(f"Nothing deleted ({what} kept)", declined=True)
    results = [_execute(t, force) for t in targets]
    return _combined(results, None)


def _combined(results: list[dict[str, Any]], action: str | None) -> dict[str, Any]:
    if len(results) == 1:
        return results[0]
    freed = sum(r["freed_bytes"] for r in results)
    return {"model": ", ".join(r["model"] for r in results), "commit_hash": None,
            "freed_bytes": freed, "action": action or "deleted",
            "message": "\n".join(r["message"] for r in results), "models": results}
