"""``prune``: plan the cache's garbage -> (dry run | confirm) -> execute, with ``rm``'s confirmation rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlxk.cache import prune
from mlxk.errors import RequiresConfirmation
from mlxk.operations.remove import Confirm, refuse
from mlxk.output.human import size_str


def _item(item: prune.PruneItem, root: Path) -> dict[str, Any]:
    return {"model": item.repo_id, "kind": item.kind, "path": os.path.relpath(item.path, root),
            "commit_hash": item.commit, "size_bytes": item.size_bytes}


def _data(action: str, items: list[prune.PruneItem], skipped: list[tuple[str, str]], root: Path,
          message: str) -> dict[str, Any]:
    return {"action": action, "freed_bytes": sum(i.size_bytes for i in items),
            "items": [_item(i, root) for i in items],
            "skipped": [{"model": r, "reason": why} for r, why in skipped], "message": message}


def prune_cache(force: bool = False, dry_run: bool = False, confirm: Confirm | None = None,
                root: Path | None = None) -> dict[str, Any]:
    """Remove detached revisions, orphan blobs, abandoned partial downloads and stale locks.

    Returns the prune data object. Without ``force`` ``confirm`` is asked (it raises
    ``RequiresConfirmation`` itself when it cannot ask); repos another process holds a
    lock on are reported under ``skipped`` and never touched.
    """
    plan = prune.plan_prune(root)
    items, skipped = plan.items, list(plan.skipped)
    total = size_str(plan.freed_bytes)
    if not items:
        return _data("nothing", [], skipped, plan.root, "Nothing to prune")
    if dry_run:
        return _data("dry_run", items, skipped, plan.root, f"Would prune {len(items)} item(s) ({total} freed)")
    if not force:
        ask = confirm or refuse
        refusal = "Pruning the cache needs confirmation: run on a terminal or pass --force"
        if not ask(f"Prune {len(items)} item(s) ({total})?", refusal):
            raise RequiresConfirmation("Prune cancelled; nothing deleted")
    done, late = prune.execute(plan)
    freed = size_str(sum(i.size_bytes for i in done))
    return _data("pruned", done, skipped + late, plan.root, f"Pruned {len(done)} item(s) ({freed} freed)")
