"""The read-only cache model: repos, revisions, refs, files, problems."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import cache_factory as cf

from mlxk.cache import layout, scan


def _tree_state(root: Path) -> list[tuple[str, float, int]]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out.append((p, st.st_mtime_ns, st.st_size))
    return sorted(out)


def test_scan_repo_reads_revisions_refs_and_files(hub_cache: Path, two_revisions) -> None:
    repo_id, old, new = two_revisions
    repo = scan.scan_repo(repo_id, hub_cache)
    assert {r.commit for r in repo.revisions} == {old, new}
    assert dict(repo.refs)["main"] == new
    assert repo.default_revision.commit == new
    assert repo.problems == ()
    rev = repo.revision(old)
    names = [f.name for f in rev.files]
    assert "model.safetensors" in names and "config.json" in names
    assert all(f.ok for f in rev.files)
    # blobs are shared: every blob of the old revision except config.json is used by the new one
    shared = repo.revision(old).blob_paths() & repo.revision(new).blob_paths()
    assert len(shared) == len(names) - 1


def test_default_revision_falls_back_to_newest_snapshot_without_ref(hub_cache: Path) -> None:
    repo_id = "org/no-ref"
    first = cf.add_repo(hub_cache, repo_id, cf.mlx_model_files(), commit="1" * 40, ref=None)
    second = cf.add_repo(hub_cache, repo_id, {**cf.mlx_model_files(), "extra.txt": "x"},
                         commit="2" * 40, ref=None)
    os.utime(layout.snapshots_dir(repo_id, hub_cache) / first, (1_000_000, 1_000_000))
    repo = scan.scan_repo(repo_id, hub_cache)
    assert repo.refs == ()
    assert repo.default_revision.commit == second


def test_size_counts_each_blob_once(hub_cache: Path) -> None:
    files = {**cf.mlx_model_files(), "copy_of_config.json": cf.mlx_model_files()["config.json"]}
    commit = cf.add_repo(hub_cache, "org/dup", files)
    rev = scan.scan_repo("org/dup", hub_cache).revision(commit)
    blob_sizes = {f.blob: f.size_bytes for f in rev.files}
    assert rev.size_bytes == sum(blob_sizes.values())
    assert rev.size_bytes < sum(f.size_bytes for f in rev.files)


def test_problems_are_recorded_not_raised(hub_cache: Path) -> None:
    cf.add_broken(hub_cache, "dangling_ref", "org/dangling")
    cf.add_broken(hub_cache, "broken_symlink", "org/broken")
    (hub_cache / "models--org--not-a-dir").write_text("junk")
    repos = {r.repo_id: r for r in scan.scan_cache(hub_cache)}
    assert set(repos) == {"org/dangling", "org/broken", "org/not-a-dir"}
    assert any("dangling ref 'main'" in p for p in repos["org/dangling"].problems)
    assert repos["org/not-a-dir"].problems
    broken = repos["org/broken"].default_revision.file("tokenizer.json")
    assert broken is not None and not broken.exists


def test_outside_symlink_is_flagged_and_not_followed(hub_cache: Path, tmp_path: Path) -> None:
    commit = cf.add_repo(hub_cache, "org/evil", cf.mlx_model_files())
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"s" * 123)
    link = cf.revision_dir(hub_cache, "org/evil", commit) / "evil.bin"
    link.symlink_to(os.path.relpath(secret, link.parent))
    f = scan.scan_repo("org/evil", hub_cache).default_revision.file("evil.bin")
    assert f.outside and not f.ok and f.size_bytes == 0


def test_scan_never_writes(hub_cache: Path, two_revisions) -> None:
    cf.add_broken(hub_cache, "incomplete_blob")
    before = _tree_state(hub_cache)
    scan.scan_cache(hub_cache)
    from mlxk.operations.models import list_models

    list_models(root=hub_cache)
    assert _tree_state(hub_cache) == before


def test_default_root_is_hf_home_hub(hub_cache: Path) -> None:
    cf.add_repo(hub_cache, "org/m", cf.mlx_model_files())
    assert layout.cache_root() == hub_cache
    assert scan.list_repo_ids() == ["org/m"]


def test_incomplete_blobs_found(hub_cache: Path) -> None:
    repo_id, _, _ = cf.add_broken(hub_cache, "incomplete_blob")
    repo = scan.scan_repo(repo_id, hub_cache)
    assert len(repo.incomplete_blobs) == 1
