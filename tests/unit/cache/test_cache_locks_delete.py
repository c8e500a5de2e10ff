"""Locks (a real second process) and the delete plan / execution."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
import pytest
from tests.support import cache_factory as cf
from tests.support.lock_holder import held_lock

from mlxk.cache import delete, layout, locks, scan
from mlxk.errors import LocksPresent


def _lock_of(hub: Path, repo_id: str, commit: str, name: str) -> Path:
    blob = cf.blob_of(hub, repo_id, commit, name)
    return layout.locks_dir(repo_id, hub) / f"{blob.name}.lock"


def test_held_lock_detected_only_while_held(hub_cache: Path, chat_model) -> None:
    repo_id, commit = chat_model
    lock = _lock_of(hub_cache, repo_id, commit, "model.safetensors")
    with held_lock(lock):
        assert locks.held_locks(repo_id) == [lock]
        assert locks.is_held(lock)
    assert lock.exists()  # filelock leaves the file behind: now stale
    assert locks.held_locks(repo_id) == []
    assert locks.repo_lock_paths(repo_id) == [lock]


def test_execute_refuses_while_locked_and_cleans_stale(hub_cache: Path, chat_model) -> None:
    repo_id, commit = chat_model
    lock = _lock_of(hub_cache, repo_id, commit, "model.safetensors")
    stale = layout.locks_dir(repo_id, hub_cache) / ("0" * 64 + ".lock")
    plan = delete.plan_delete(scan.scan_repo(repo_id), None)
    with held_lock(lock):
        stale.write_text("")
        with pytest.raises(LocksPresent):
            delete.execute(plan)
        assert layout.repo_dir(repo_id).exists()
    delete.execute(plan)
    assert not layout.repo_dir(repo_id).exists()
    assert not stale.exists() and not lock.exists()
    assert not layout.locks_dir(repo_id).exists()


def test_revision_delete_keeps_shared_blobs(hub_cache: Path, two_revisions) -> None:
    repo_id, old, new = two_revisions
    repo = scan.scan_repo(repo_id)
    plan = delete.plan_delete(repo, new)
    only_new = repo.revision(new).blob_paths() - repo.revision(old).blob_paths()
    assert set(plan.blobs) == only_new and len(only_new) == 1
    assert plan.freed_bytes == sum(p.stat().st_size for p in only_new)
    delete.execute(plan)
    after = scan.scan_repo(repo_id)
    assert [r.commit for r in after.revisions] == [old]
    assert all(f.ok for f in after.revision(old).files)
    assert not (layout.refs_dir(repo_id) / "main").exists()  # main pointed at the deleted revision
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []


def test_outside_symlink_never_followed(hub_cache: Path, tmp_path: Path, chat_model) -> None:
    repo_id, commit = chat_model
    outside_dir = tmp_path / "precious"
    outside_dir.mkdir()
    secret = outside_dir / "weights.safetensors"
    secret.write_bytes(b"keep me")
    snap = cf.revision_dir(hub_cache, repo_id, commit)
    (snap / "evil.safetensors").symlink_to(os.path.relpath(secret, snap))
    (snap / "evil_dir").symlink_to(os.path.relpath(outside_dir, snap))
    (layout.blobs_dir(repo_id) / "link-out").symlink_to(secret)
    plan = delete.plan_delete(scan.scan_repo(repo_id), None)
    delete.execute(plan)
    assert secret.read_bytes() == b"keep me" and outside_dir.is_dir()
    assert not layout.repo_dir(repo_id).exists()


def test_symlinked_repo_folder_only_unlinks_the_link(hub_cache: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    cf.add_repo(elsewhere, "org/real", cf.mlx_model_files())
    (hub_cache / "models--org--linked").symlink_to(elsewhere / "models--org--real")
    plan = delete.plan_delete(scan.scan_repo("org/linked"), None)
    assert plan.blobs == () and plan.freed_bytes == 0
    delete.execute(plan)
    assert not os.path.lexists(hub_cache / "models--org--linked")
    assert (elsewhere / "models--org--real" / "blobs").is_dir()


def test_broken_repos_delete_cleanly(hub_cache: Path, broken_model) -> None:
    repo_id, _, _ = broken_model
    delete.execute(delete.plan_delete(scan.scan_repo(repo_id), None))
    assert not layout.repo_dir(repo_id).exists()
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []
