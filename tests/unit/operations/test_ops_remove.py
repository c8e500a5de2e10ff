"""rm rules of contract section 6 (operation level; the CLI is covered in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from tests.support import cache_factory as cf
from tests.support.lock_holder import held_lock

from mlxk.cache import layout
from mlxk.errors import LocksPresent, ModelNotFound, RequiresConfirmation, ValidationError
from mlxk.operations.remove import remove_model


def _yes(question: str, refusal: str) -> bool:
    return True


def _no(question: str, refusal: str) -> bool:
    return False


def test_exact_name_with_confirmation(chat_model) -> None:
    repo_id, commit = chat_model
    asked: list[str] = []
    data = remove_model(repo_id, confirm=lambda q, r: asked.append(q) or True)
    assert asked and repo_id in asked[0]
    assert data["action"] == "deleted" and data["commit_hash"] == commit and data["freed_bytes"] > 0
    assert not layout.repo_dir(repo_id).exists()


def test_declined_confirmation_deletes_nothing(chat_model) -> None:
    repo_id, _ = chat_model
    with pytest.raises(RequiresConfirmation):
        remove_model(repo_id, confirm=_no)
    assert layout.repo_dir(repo_id).exists()


def test_no_confirm_callback_refuses(chat_model) -> None:
    repo_id, _ = chat_model
    with pytest.raises(RequiresConfirmation):
        remove_model(repo_id)
    assert layout.repo_dir(repo_id).exists()


@pytest.mark.parametrize("ref", ["tiny-chat", "Tiny-Chat-4bit", "MLX-COMMUNITY/TINY-CHAT-4BIT"])
def test_fuzzy_or_short_names_ask_naming_the_full_id(chat_model, ref: str) -> None:
    repo_id, _ = chat_model
    assert remove_model(ref, dry_run=True)["model"] == repo_id   # dry run resolves the same way
    with pytest.raises(RequiresConfirmation):
        remove_model(ref)                                          # no way to ask: nothing deleted
    assert layout.repo_dir(repo_id).exists()
    asked: list[str] = []
    assert remove_model(ref, confirm=lambda q, r: asked.append(q) or True)["action"] == "deleted"
    assert f"'{repo_id}'" in asked[0]
    assert not layout.repo_dir(repo_id).exists()


def test_dry_run_changes_nothing(two_revisions, hub_cache: Path) -> None:
    repo_id, _old, new = two_revisions
    before = sorted(p.name for p in hub_cache.rglob("*"))
    data = remove_model(f"{repo_id}@{new[:6]}", dry_run=True)
    assert data["action"] == "dry_run" and data["commit_hash"] == new
    blob = cf.blob_of(hub_cache, repo_id, new, "config.json")
    assert data["freed_bytes"] == blob.stat().st_size
    whole = remove_model(repo_id, dry_run=True)
    assert whole["freed_bytes"] > data["freed_bytes"]
    assert sorted(p.name for p in hub_cache.rglob("*")) == before


def test_revision_rm_keeps_other_revision(two_revisions, hub_cache: Path) -> None:
    repo_id, old, new = two_revisions
    only_old = cf.blob_of(hub_cache, repo_id, old, "config.json")  # the one blob new does not share
    size = only_old.stat().st_size
    data = remove_model(f"{repo_id}@{old[:5]}", force=True)
    assert data["action"] == "deleted_revision" and data["commit_hash"] == old
    assert data["freed_bytes"] == size and not only_old.exists()
    assert (layout.snapshots_dir(repo_id) / new).is_dir() and not (layout.snapshots_dir(repo_id) / old).exists()
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []
    last = remove_model(f"{repo_id}@{new[:5]}", force=True)
    assert last["action"] == "deleted_revision" and not layout.repo_dir(repo_id).exists()


def test_locks_checked_before_confirmation(chat_model, hub_cache: Path) -> None:
    repo_id, commit = chat_model
    lock = layout.locks_dir(repo_id) / (cf.blob_of(hub_cache, repo_id, commit, "model.safetensors").name + ".lock")
    asked: list[str] = []
    with held_lock(lock):
        with pytest.raises(LocksPresent) as info:
            remove_model(repo_id, confirm=lambda q, r: asked.append(q) or True)
        assert asked == [] and info.value.extra["locks"] == [lock.name]
        assert layout.repo_dir(repo_id).exists()
        assert remove_model(repo_id, force=True)["action"] == "deleted"  # --force overrides


@pytest.mark.parametrize("ref", ["../x", "/etc", "./local", "org/../../x", "org\\x", "", "a" * 97])
def test_paths_and_bad_names_rejected(chat_model, ref: str) -> None:
    with pytest.raises((ValidationError, ModelNotFound)):
        remove_model(ref, force=True)
    assert layout.repo_dir(chat_model[0]).exists()
