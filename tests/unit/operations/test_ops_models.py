"""list/show data: the model object, metadata, files, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support import cache_factory as cf
from tests.support import fixtures_cache as fc
from tests.support.schema import assert_valid

from mlxk.errors import ModelNotFound
from mlxk.operations.models import file_type, list_models, show_model


def test_list_is_sorted_and_counts(model_zoo) -> None:
    data = list_models()
    names = [m["name"] for m in data["models"]]
    assert names == sorted(names) and data["count"] == len(model_zoo)
    assert_valid({"status": "success", "command": "list", "data": data, "error": None})


def test_list_pattern_is_case_insensitive_substring(model_zoo) -> None:
    assert [m["name"] for m in list_models("TINY-CHAT")["models"]] == [fc.CHAT]
    assert list_models("nothing-matches")["count"] == 0


def test_model_object_fields(chat_model, hub_cache: Path) -> None:
    repo, commit = chat_model
    m = list_models()["models"][0]
    assert m["name"] == repo and m["hash"] == commit and m["cached"] is True
    files = cf.mlx_model_files()
    assert m["size_bytes"] == sum(len(v if isinstance(v, bytes) else v.encode()) for v in files.values())
    assert m["last_modified"].endswith("Z") and m["health"] == "healthy" and m["reason"] is None


def test_show_metadata(model_zoo) -> None:
    data = show_model(fc.THINK)
    meta = data["metadata"]
    assert data["model"]["quantization"] == "4bit"
    assert meta["model_type"] == "llama" and meta["architecture"] == "LlamaForCausalLM"
    assert meta["context_length"] == 2048 and meta["vocab_size"] == 256
    assert meta["hidden_size"] == 64 and meta["num_attention_heads"] == 4 and meta["num_hidden_layers"] == 2
    # 256*64 embed + 2 layers * (q 64*64 + k,v 32*64 + o 64*64 + 3 mlp 64*128 + 2 norms) + final norm
    assert meta["parameter_count"] == 256 * 64 + 2 * (4096 * 2 + 2048 * 2 + 8192 * 3 + 128) + 64
    assert meta["chat_template"] is True
    assert [r["refs"] for r in meta["revisions"]] == [["main"]]
    assert_valid({"status": "success", "command": "show", "data": data, "error": None})


def test_parameter_count_unquantized_equals_quantized(model_zoo) -> None:
    q = show_model(fc.BASE)["metadata"]["parameter_count"]
    f = show_model(fc.PYTORCH)["metadata"]["parameter_count"]
    assert q == f > 0


def test_show_embedding_dimension(model_zoo) -> None:
    meta = show_model(fc.EMBED)["metadata"]
    assert meta["embedding_dimension"] == 32 and meta["chat_template"] is False


def test_show_files_and_config(model_zoo) -> None:
    data = show_model(fc.EMBED, files=True, config=True)
    types = {f["name"]: f["type"] for f in data["files"]}
    assert types["config.json"] == "config" and types["model.safetensors"] == "weights"
    assert types["vocab.txt"] == "tokenizer" and types["1_Pooling/config.json"] == "config"
    assert data["config"] == json.loads(cf.bert_files()["config.json"])


def test_show_revisions_list_both(two_revisions) -> None:
    repo, old, new = two_revisions
    revs = {r["hash"]: r["refs"] for r in show_model(repo)["metadata"]["revisions"]}
    assert revs == {old: [], new: ["main"]}
    assert show_model(f"{repo}@{old[:6]}")["model"]["hash"] == old


def test_show_local_directory(tmp_path: Path) -> None:
    d = tmp_path / "local"
    for name, content in cf.mlx_model_files().items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    data = show_model(str(d), files=True)
    assert data["model"]["cached"] is False and data["model"]["name"] == str(d.resolve())
    assert data["model"]["hash"] is None and data["model"]["health"] == "healthy"
    assert data["metadata"]["revisions"] == []
    assert_valid({"status": "success", "command": "show", "data": data, "error": None})


def test_show_unknown_model() -> None:
    with pytest.raises(ModelNotFound):
        show_model("nope")


@pytest.mark.parametrize(("name", "kind"), [("README.md", "readme"), ("model.safetensors.index.json", "weights"),
                                            ("tokenizer.model", "tokenizer"), ("merges.txt", "tokenizer"),
                                            ("generation_config.json", "config"), ("LICENSE", "other")])
def test_file_type(name: str, kind: str) -> None:
    assert file_type(name) == kind


@pytest.mark.parametrize("variant", ["lfs_pointer", "truncated_safetensors", "missing_shard"])
def test_broken_files_are_not_runtime_compatible(hub_cache: Path, variant: str) -> None:
    """The config alone says the model runs; broken weights say it cannot (issue 12)."""
    repo_id, _, reason = cf.add_broken(hub_cache, variant)
    m = show_model(repo_id)["model"]
    assert m["health"] == "unhealthy" and m["runtime_compatible"] is False
    assert m["reason"].startswith(reason)
    listed = {x["name"]: x for x in list_models()["models"]}
    assert listed[repo_id]["runtime_compatible"] is False
    from mlxk.operations.health import check_revision

    h = check_revision(repo_id).to_dict()
    assert h["runtime_compatible"] is False and h["runtime_reason"].startswith(reason)
