"""`mlxk health` and `mlxk rm` as real processes: exit codes, stderr, schemas, safety."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
import pytest
from tests.support import cache_factory as cf
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.lock_holder import held_lock
from tests.support.schema import assert_valid

from mlxk.cache import layout


def test_broken_variant_unhealthy_exit_1_but_listed(broken_model) -> None:
    repo_id, _commit, reason = broken_model
    r = run_mlxk("health", "--json")
    assert r.returncode == 1
    env = assert_valid(r.json)
    assert env["status"] == "success"
    [entry] = env["data"]["unhealthy"]
    assert entry["name"] == repo_id and entry["reason"].startswith(reason)
    human = run_mlxk("health", repo_id.split("/")[1])
    assert human.returncode == 1 and reason in human.stdout
    listed = assert_valid(run_mlxk("list", "--json").json)["data"]["models"]
    assert [m["name"] for m in listed] == [repo_id] and listed[0]["health"] == "unhealthy"
    shown = run_mlxk("show", repo_id, "--json", "--files")
    assert shown.returncode == 0, shown.stdout
    assert assert_valid(shown.json)["data"]["model"]["reason"].startswith(reason)


def test_health_ok_exit_0(model_zoo) -> None:
    r = run_mlxk("health", "--json", "--verify")
    assert r.returncode == 0, r.stdout
    assert assert_valid(r.json)["data"]["summary"]["healthy_count"] == len(model_zoo)
    assert run_mlxk("health").returncode == 0


def test_health_verify_finds_bitrot(hub_cache: Path, chat_model) -> None:
    repo_id, commit = chat_model
    blob = cf.blob_of(hub_cache, repo_id, commit, "model.safetensors")
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    assert run_mlxk("health").returncode == 0
    r = run_mlxk("health", "--verify", "--json")
    assert r.returncode == 1 and "digest mismatch" in assert_valid(r.json)["data"]["unhealthy"][0]["reason"]


def test_rm_non_interactive_requires_confirmation(chat_model) -> None:
    repo_id, _ = chat_model
    r = run_mlxk("rm", repo_id)
    assert r.returncode == 1 and r.stderr.startswith("rm: Error: ") and r.stdout == ""
    j = run_mlxk("rm", repo_id, "--json")
    assert j.returncode == 1 and assert_valid(j.json)["error"]["type"] == "requires_confirmation"
    assert layout.repo_dir(repo_id).exists()


def test_rm_dry_run_then_force(hub_cache: Path, two_revisions) -> None:
    repo_id, old, new = two_revisions
    d = run_mlxk("rm", f"{repo_id}@{old[:8]}", "--dry-run", "--json")
    assert d.returncode == 0 and assert_valid(d.json)["data"]["action"] == "dry_run"
    f = run_mlxk("rm", f"{repo_id}@{old[:8]}", "-f", "--json")
    data = assert_valid(f.json)["data"]
    assert f.returncode == 0 and data["action"] == "deleted_revision" and data["commit_hash"] == old
    assert (layout.snapshots_dir(repo_id) / new).is_dir()
    assert huggingface_hub.scan_cache_dir(hub_cache).warnings == []
    w = run_mlxk("rm", repo_id, "--force")
    assert w.returncode == 0 and "Deleted" in w.stdout and not layout.repo_dir(repo_id).exists()


def test_rm_tty_prompt(chat_model) -> None:
    pexpect = pytest.importorskip("pexpect")
    repo_id, _ = chat_model
    argv = mlxk_argv("rm", repo_id)
    child = pexpect.spawn(argv[0], argv[1:], env=mlxk_env(), encoding="utf-8", timeout=60)
    child.expect(r"\[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and layout.repo_dir(repo_id).exists()
    child = pexpect.spawn(argv[0], argv[1:], env=mlxk_env(), encoding="utf-8", timeout=60)
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not layout.repo_dir(repo_id).exists()


def test_rm_refuses_while_real_process_holds_lock(hub_cache: Path, chat_model) -> None:
    repo_id, commit = chat_model
    blob = cf.blob_of(hub_cache, repo_id, commit, "model.safetensors")
    lock = layout.locks_dir(repo_id) / f"{blob.name}.lock"
    with held_lock(lock):
        r = run_mlxk("rm", repo_id, "--json", "--dry-run")
        assert r.returncode == 1 and assert_valid(r.json)["error"]["type"] == "locks_present"
        assert layout.repo_dir(repo_id).exists()
    # released: the lock file is stale now; it does not block and does not survive
    r = run_mlxk("rm", repo_id, "-f", "--json")
    assert r.returncode == 0 and not lock.exists() and not layout.locks_dir(repo_id).exists()


@pytest.mark.parametrize("ref", ["../models--x--y", "/etc/passwd", "org/../x", "..", "org//x"])
def test_rm_rejects_paths(chat_model, ref: str) -> None:
    r = run_mlxk("rm", ref, "-f", "--json")
    assert r.returncode == 1
    assert assert_valid(r.json)["error"]["type"] in ("ValidationError", "model_not_found")
    assert layout.repo_dir(chat_model[0]).exists()


def test_rm_never_follows_outside_symlink(hub_cache: Path, tmp_path: Path, chat_model) -> None:
    repo_id, commit = chat_model
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"precious")
    snap = cf.revision_dir(hub_cache, repo_id, commit)
    (snap / "link.safetensors").symlink_to(os.path.relpath(secret, snap))
    r = run_mlxk("rm", repo_id, "-f")
    assert r.returncode == 0 and secret.read_bytes() == b"precious"
    assert not layout.repo_dir(repo_id).exists()


def test_rm_unknown_model() -> None:
    r = run_mlxk("rm", "nothing-here", "-f", "--json")
    assert r.returncode == 1 and assert_valid(r.json)["error"]["type"] == "model_not_found"
