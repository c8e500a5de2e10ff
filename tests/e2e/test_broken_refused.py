"""Broken models must not answer: `run` and `embed` refuse what `health` calls unhealthy.

Each refusal happens before any weights load, so these tests are cheap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.support import cache_factory as cf
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid


@pytest.mark.parametrize("variant", ["broken_symlink", "truncated_safetensors"])
def test_run_refuses_unhealthy_model_with_the_health_reason(hub_cache: Path, variant: str) -> None:
    repo_id, _commit, reason = cf.add_broken(hub_cache, variant)
    r = run_mlxk("run", repo_id, "hello", "--json", "--max-tokens", "2")
    assert r.returncode == 1, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "not_runtime_compatible"
    assert reason in err["message"] and "unhealthy" in err["message"]
    human = run_mlxk("run", repo_id, "hello", "--max-tokens", "2")
    assert human.returncode == 1 and human.stdout == ""
    assert human.stderr.startswith("run: Error: ") and reason in human.stderr


def test_run_refuses_a_directory_where_tokenizer_json_should_be(hub_cache: Path) -> None:
    repo_id = "broken-org/tokenizer-dir"
    commit = cf.add_repo(hub_cache, repo_id, cf.mlx_model_files())
    cf.make_tokenizer_json_a_directory(hub_cache, repo_id, commit)
    r = run_mlxk("run", repo_id, "hello", "--json")
    assert r.returncode == 1
    assert assert_valid(r.json)["error"]["type"] == "not_runtime_compatible"


def test_embed_refuses_unhealthy_encoder(hub_cache: Path) -> None:
    repo_id = "sentence-transformers/tiny-bert-broken"
    commit = cf.add_repo(hub_cache, repo_id, cf.bert_files())
    blob = cf.blob_of(hub_cache, repo_id, commit, "model.safetensors")
    blob.write_bytes(blob.read_bytes()[:-64])
    r = run_mlxk("embed", repo_id, "hello", "--json")
    assert r.returncode == 1, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "not_runtime_compatible" and "truncated safetensors" in err["message"]


def test_run_refuses_unhealthy_local_directory(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for name, content in cf.mlx_model_files().items():
        target = model / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    (model / "tokenizer.json").unlink()
    shutil.copy(model / "config.json", model / "unused.txt")
    r = run_mlxk("run", str(model), "hi", "--json")
    assert r.returncode == 1
    assert "tokenizer files missing" in assert_valid(r.json)["error"]["message"]
