"""``rm``: resolve -> lock check -> plan -> (dry run | confirm) -> execute (contract section 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlxk.cache import delete, locks, scan
from mlxk.cache.resolve import is_explicit_path, resolve, split_revision
from mlxk.errors import RequiresConfirmation, ValidationError
from mlxk.output.human import size_str

Confirm = Callable[[str, str], bool]


def refuse(question: str, refusal: str) -> bool:
    raise RequiresConfirmation(refusal)


def remove_model(ref: str, force: bool = False, dry_run: bool = False, confirm: Confirm | None = None,
                 root: Path | None = None) -> dict[str, Any]:
    """Delete a cached model (or with ``@hash`` one revision). Returns the rm data object.

    Without ``force``: a held download lock refuses first (``locks_present``), then
    a fuzzy or short name refuses (``requires_confirmation``), then ``confirm`` is
    asked (it raises ``RequiresConfirmation`` itself when it cannot ask).
    """
    if is_explicit_path(ref):
        raise ValidationError(f"'{ref}' is a path; rm only deletes models from the cache")
    resolved = resolve(ref, root)
    assert resolved.repo_id is not None
    name_part, _ = split_revision(ref.strip())
    commit = resolved.commit if resolved.revision_explicit else None
    if not force:
        busy = locks.held_locks(resolved.repo_id, root)
        if busy:
            raise locks.locks_present_error(resolved.repo_id, busy)
    repo = scan.scan_repo(resolved.repo_id, root)
    plan = delete.plan_delete(repo, commit, root)
    what = f"revision {commit[:12]} of '{resolved.repo_id}'" if commit else f"'{resolved.repo_id}'"
    data: dict[str, Any] = {"model": resolved.display, "commit_hash": commit or resolved.commit,
                            "freed_bytes": plan.freed_bytes, "files": plan.files}
    if dry_run:
        return {**data, "action": "dry_run",
                "message": f"Would delete {what} ({size_str(plan.freed_bytes)} freed)"}
    if not force:
        if name_part != resolved.repo_id:
            raise RequiresConfirmation(
                f"'{name_part}' matched '{resolved.repo_id}' by a partial name; nothing deleted. "
                f"Use the full name or --force", matches=[resolved.repo_id])
        ask = confirm or refuse
        refusal = f"Deleting {what} needs confirmation: run on a terminal or pass --force"
        if not ask(f"Delete {what} ({size_str(plan.freed_bytes)})?", refusal):
            raise RequiresConfirmation(f"Deletion of {what} cancelled; nothing deleted")
    freed = delete.execute(plan, force=force)
    if commit and not plan.whole_repo:
        return {**data, "freed_bytes": freed, "action": "deleted_revision",
                "message": f"Deleted {what} ({size_str(freed)} freed)"}
    suffix = " (its last revision)" if commit else ""
    return {**data, "freed_bytes": freed, "action": "deleted_revision" if commit else "deleted",
            "message": f"Deleted {what}{suffix} ({size_str(freed)} freed)"}
