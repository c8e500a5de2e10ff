"""Every integrity rule of contract section 5, on real files."""

from __future__ import annotations

from pathlib import Path

from tests.support import cache_factory as cf

from mlxk.cache import integrity, scan
from mlxk.operations.health import check_revision, health_report


def test_each_broken_variant_has_its_reason(broken_model) -> None:
    repo_id, _, reason = broken_model
    entry = check_revision(repo_id)
    assert entry.status == "unhealthy"
    assert entry.reason.startswith(reason), (entry.reason, reason)


def test_healthy_zoo(model_zoo) -> None:
    report = health_report()
    assert report["summary"]["unhealthy_count"] == 0, report["unhealthy"]
    assert report["summary"]["total"] == len(model_zoo)


def test_verify_detects_corrupted_blobs(hub_cache: Path, chat_model) -> None:
    repo_id, commit = chat_model
    assert check_revision(repo_id, verify=True).healthy
    # same length, different bytes: structure checks pass, digests do not
    blob = cf.blob_of(hub_cache, repo_id, commit, "model.safetensors")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    sha1_blob = cf.blob_of(hub_cache, repo_id, commit, "tokenizer.json")
    sha1_blob.write_text(sha1_blob.read_text().replace("WordLevel", "WordLevex"))
    assert check_revision(repo_id).healthy
    entry = check_revision(repo_id, verify=True)
    assert not entry.healthy
    assert any(p.startswith("digest mismatch: model.safetensors (sha256") for p in entry.problems)
    assert any(p.startswith("digest mismatch: tokenizer.json (git sha1") for p in entry.problems)
    report = health_report(verify=True)
    assert report["unhealthy"][0]["reason"].startswith("digest mismatch")


def test_verify_revisions_parallel_matches_serial(hub_cache: Path, model_zoo) -> None:
    revs = [r.default_revision for r in scan.scan_cache(hub_cache)]
    assert integrity.verify_revisions(revs, workers=4) == [integrity.verify_digests(r) for r in revs]
    assert all(p == [] for p in integrity.verify_revisions(revs))


def test_index_with_empty_shard(hub_cache: Path) -> None:
    files = cf.mlx_model_files(shards=2)
    files["model-00002-of-00002.safetensors"] = b""
    cf.add_repo(hub_cache, "org/empty-shard", files)
    assert check_revision("org/empty-shard").reason == "empty shard: model-00002-of-00002.safetensors"


def test_garbage_safetensors_header(hub_cache: Path) -> None:
    cf.add_repo(hub_cache, "org/garbage", {**cf.mlx_model_files(), "model.safetensors": b"\xff" * 4000})
    assert check_revision("org/garbage").reason.startswith("invalid safetensors header: model.safetensors")


def test_oversized_safetensors(hub_cache: Path) -> None:
    files = cf.mlx_model_files()
    files["model.safetensors"] = files["model.safetensors"] + b"\0" * 10
    cf.add_repo(hub_cache, "org/long", files)
    assert check_revision("org/long").reason.startswith("oversized safetensors: model.safetensors")


def test_outside_symlink_is_unhealthy(hub_cache: Path, tmp_path: Path, chat_model) -> None:
    import os

    repo_id, commit = chat_model
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    link = cf.revision_dir(hub_cache, repo_id, commit) / "extra.json"
    link.symlink_to(os.path.relpath(outside, link.parent))
    assert check_revision(repo_id).reason == "symlink points outside the cache: extra.json"


def test_gguf_repo_needs_no_config(model_zoo) -> None:
    from tests.support.fixtures_cache import GGUF

    assert check_revision(GGUF).healthy


def test_specific_revision(two_revisions) -> None:
    repo, old, _ = two_revisions
    e = check_revision(repo, old)
    assert e.healthy and e.hash == old
    assert check_revision(repo, "c" * 40).reason.startswith("revision cccccccccccc is not cached")


def test_health_pattern_and_reference(two_revisions, chat_model) -> None:
    repo, old, _ = two_revisions
    assert health_report("two-revs")["summary"]["total"] == 1
    r = health_report(f"{repo}@{old[:8]}")
    assert r["healthy"][0]["hash"] == old and r["healthy"][0]["name"] == f"{repo}@{old[:12]}"


def test_dangling_ref_with_other_snapshot(hub_cache: Path) -> None:
    from mlxk.cache import layout

    commit = cf.add_repo(hub_cache, "org/dang", cf.mlx_model_files(), ref=None)
    (layout.refs_dir("org/dang", hub_cache) / "main").write_text("d" * 40)
    repo = scan.scan_repo("org/dang", hub_cache)
    assert repo.default_revision.commit == commit  # falls back to the newest snapshot
    entry = check_revision("org/dang")
    assert entry.reason == "dangling ref 'main' -> dddddddddddd (no snapshot)"
