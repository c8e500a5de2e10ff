"""`mlxk prune` on a real cache with every kind of garbage, next to a download in progress."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import huggingface_hub
import pytest
from tests.support import cache_factory as cf
from tests.support.cli import run_mlxk
from tests.support.lock_holder import held_lock
from tests.support.schema import assert_valid

from mlxk.cache import layout

KEPT = "mlx-community/Prune-Kept-4bit"
BUSY = "mlx-community/Prune-Busy-4bit"


def _tree(*tops: Path) -> dict[str, str]:
    """Every file below ``tops`` (links by target, files by sha256): a byte-for-byte fingerprint."""
    out: dict[str, str] = {}
    for top in tops:
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                p = Path(dirpath) / f
                out[str(p)] = ("-> " + os.readlink(p)) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def garbage(hub_cache: Path) -> dict:
    """KEPT: two revisions (old detached, owning its config blob), an orphan blob, an abandoned
    .incomplete with a stale lock. BUSY: healthy, plus a live download (unlinked blob + .incomplete)."""
    files = cf.mlx_model_files()
    old = cf.add_repo(hub_cache, KEPT, {**files, "config.json": cf.config_json(rope_theta=20000.0)},
                      commit="a" * 40)
    new = cf.add_repo(hub_cache, KEPT, files, commit="b" * 40)
    os.utime(layout.snapshots_dir(KEPT) / old, (1, 1))  # older snapshot
    blobs = layout.blobs_dir(KEPT)
    orphan = blobs / ("c" * 64)
    orphan.write_bytes(b"o" * 3000)
    partial = blobs / ("d" * 40 + ".incomplete")
    partial.write_bytes(b"p" * 1234)
    stale = layout.locks_dir(KEPT) / ("d" * 40 + ".lock")
    stale.parent.mkdir(parents=True)
    stale.touch()
    own_blob = cf.blob_of(hub_cache, KEPT, old, "config.json")
    cf.add_repo(hub_cache, BUSY, cf.mlx_model_files(chat=False))
    busy_blobs = layout.blobs_dir(BUSY)
    (busy_blobs / ("e" * 64)).write_bytes(b"done, not linked yet")
    (busy_blobs / ("f" * 64 + ".incomplete")).write_bytes(b"half")
    garbage_paths = [layout.snapshots_dir(KEPT) / old, own_blob, orphan, partial, stale]
    expected = own_blob.stat().st_size + orphan.stat().st_size + partial.stat().st_size
    return {"old": old, "new": new, "paths": garbage_paths, "bytes": expected,
            "busy_lock": layout.locks_dir(BUSY) / ("f" * 64 + ".lock")}


def test_prune_removes_exactly_the_garbage(hub_cache: Path, garbage: dict) -> None:
    busy_dirs = (layout.repo_dir(BUSY), layout.locks_dir(BUSY))
    with held_lock(garbage["busy_lock"]):
        before = _tree(hub_cache)
        busy_before = _tree(*busy_dirs)
        dry = run_mlxk("prune", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        data = assert_valid(dry.json)["data"]
        assert data["action"] == "dry_run" and data["freed_bytes"] == garbage["bytes"]
        kinds = sorted(i["kind"] for i in data["items"])
        assert kinds == ["detached_revision", "incomplete", "orphan_blob", "stale_lock"]
        assert {i["model"] for i in data["items"]} == {KEPT}
        assert [s["model"] for s in data["skipped"]] == [BUSY]
        [rev] = [i for i in data["items"] if i["kind"] == "detached_revision"]
        assert rev["commit_hash"] == garbage["old"]
        assert _tree(hub_cache) == before

        refused = run_mlxk("prune", "--json")   # not a terminal, no -f
        assert refused.returncode == 1
        assert assert_valid(refused.json)["error"]["type"] == "requires_confirmation"
        assert _tree(hub_cache) == before

        done = run_mlxk("prune", "-f", "--json")
        assert done.returncode == 0, done.stderr
        pruned = assert_valid(done.json)["data"]
        assert pruned["action"] == "pruned" and pruned["freed_bytes"] == garbage["bytes"]
        assert not any(os.path.lexists(p) for p in garbage["paths"])
        gone = set(before) - set(_tree(hub_cache))
        assert all(any(g == str(p) or g.startswith(str(p) + os.sep) for p in garbage["paths"]) for g in gone)
        assert _tree(*busy_dirs) == busy_before
        assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []
    health = run_mlxk("health", KEPT, "--json")
    assert health.returncode == 0, health.stdout
    assert (layout.snapshots_dir(KEPT) / garbage["new"]).is_dir()
    again = assert_valid(run_mlxk("prune", "--dry-run", "--json").json)["data"]
    # the download "finished" (lock released): its unlinked blob and partial are garbage now
    assert {i["model"] for i in again["items"]} == {BUSY} and again["skipped"] == []
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []


def test_prune_keeps_newest_revision_of_a_repo_without_refs(hub_cache: Path) -> None:
    repo = "org/no-refs"
    cf.add_repo(hub_cache, repo, cf.mlx_model_files(), commit="1" * 40, ref=None)
    newest = cf.add_repo(hub_cache, repo, {**cf.mlx_model_files(), "config.json": cf.config_json(vocab_size=300)},
                         commit="2" * 40, ref=None)
    os.utime(layout.snapshots_dir(repo) / ("1" * 40), (1, 1))
    r = run_mlxk("prune", "-f", "--json")
    items = assert_valid(r.json)["data"]["items"]
    assert [(i["kind"], i["commit_hash"]) for i in items] == [("detached_revision", "1" * 40)]
    assert sorted(os.listdir(layout.snapshots_dir(repo))) == [newest]


def test_prune_abandoned_repo_and_dangling_ref(hub_cache: Path) -> None:
    dead = layout.blobs_dir("org/died")
    dead.mkdir(parents=True)
    (dead / ("9" * 40 + ".incomplete")).write_bytes(b"x" * 10)
    lock_only = layout.locks_dir("org/gone") / "x.lock"
    lock_only.parent.mkdir(parents=True)
    lock_only.touch()
    repo, commit = "org/dangling", None
    commit = cf.add_repo(hub_cache, repo, cf.mlx_model_files())
    (layout.refs_dir(repo) / "pr").mkdir()
    (layout.refs_dir(repo) / "pr" / "1").write_text("8" * 40)
    h = run_mlxk("prune")
    assert h.returncode == 1 and h.stderr.startswith("prune: Error: ")
    r = run_mlxk("prune", "-f", "--json")
    data = assert_valid(r.json)["data"]
    assert sorted((i["kind"], i["model"]) for i in data["items"]) == [
        ("abandoned_repo", "org/died"), ("dangling_ref", repo), ("stale_lock", "org/gone")]
    assert data["freed_bytes"] == 10 + 40
    assert not layout.repo_dir("org/died").exists() and not layout.locks_dir("org/gone").exists()
    assert (layout.refs_dir(repo) / "main").read_text() == commit
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []
    human = run_mlxk("prune", "--dry-run")
    assert human.returncode == 0 and "Nothing to prune" in human.stdout
    assert json.loads(run_mlxk("prune", "-f", "--json").stdout)["data"]["action"] == "nothing"


def test_prune_asks_on_a_terminal(hub_cache: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    from tests.support.cli import mlxk_argv, mlxk_env

    orphan = layout.blobs_dir("org/x")
    cf.add_repo(hub_cache, "org/x", cf.mlx_model_files())
    (orphan / ("0" * 64)).write_bytes(b"orphan")
    argv = mlxk_argv("prune")
    for answer, survives in (("n", True), ("y", False)):
        child = pexpect.spawn(argv[0], argv[1:], env=mlxk_env(), encoding="utf-8", timeout=60)
        child.expect(r"Prune 1 item\(s\) \(6 B\)\? \[y/N\]")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == (1 if survives else 0)
        assert (orphan / ("0" * 64)).exists() == survives


def test_prune_with_dots_in_the_cache_path_keeps_every_linked_blob(hub_cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlxk.cache.prune import plan_prune

    cf.add_repo(hub_cache, "org/kept", cf.mlx_model_files())
    (hub_cache.parent / "sub").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache.parent / "sub" / ".." / hub_cache.name))
    assert plan_prune().items == []
    r = run_mlxk("prune", "-f", "--json")
    assert assert_valid(r.json)["data"]["action"] == "nothing"
    assert run_mlxk("health", "org/kept").returncode == 0


def test_a_blob_reached_through_an_absolute_or_aliased_link_is_kept(hub_cache: Path, tmp_path: Path) -> None:
    repo = "org/odd-links"
    commit = cf.add_repo(hub_cache, repo, cf.mlx_model_files())
    alias = tmp_path / "alias"
    alias.symlink_to(hub_cache)
    link = cf.revision_dir(hub_cache, repo, commit) / "config.json"
    blob = cf.blob_of(hub_cache, repo, commit, "config.json")
    link.unlink()
    link.symlink_to(alias / blob.relative_to(hub_cache))
    data = assert_valid(run_mlxk("prune", "-f", "--json").json)["data"]
    assert data["action"] == "nothing" and blob.exists()


def test_a_repo_the_file_system_refuses_is_reported_and_the_rest_pruned(
        hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlxk.cache import delete
    from mlxk.errors import PermissionDenied
    from mlxk.operations.prune import prune_cache

    for repo in ("org/ro", "org/rw"):
        cf.add_repo(hub_cache, repo, cf.mlx_model_files())
        (layout.blobs_dir(repo) / ("0" * 64)).write_bytes(b"orphan")
    real_remove = delete._remove

    def refuse_ro(path: Path, plan: delete.DeletePlan) -> None:   # what a read-only folder does
        if plan.repo_id == "org/ro":
            raise PermissionDenied(f"Permission denied deleting {path}")
        real_remove(path, plan)

    monkeypatch.setattr(delete, "_remove", refuse_ro)
    data = prune_cache(force=True)
    assert [i["model"] for i in data["items"]] == ["org/rw"]
    assert [s["model"] for s in data["skipped"]] == ["org/ro"] and "Permission" in data["skipped"][0]["reason"]
    assert (layout.blobs_dir("org/ro") / ("0" * 64)).exists()
    assert not (layout.blobs_dir("org/rw") / ("0" * 64)).exists()
