"""`mlxk show DIR` on a LoRA adapter folder (mlx-lm's format, built here with mlx-lm's tuner
utilities over the tiny llama): base model, rank, layers, scale, size, whether the base is in the
cache; JSON valid against show.json; no mlx imported; a broken folder gets a clear error. And
`show MODEL` reports the model's own context length (a `--max-kv-size` window is a server setting:
`/v1/models` reports it, tests/server/test_serve_lora_tiny.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from tests.support.adapters import build_random_adapter
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import TINY_REPO_ID
from tests.support.import_probe import HEAVY, imported_modules
from tests.support.schema import assert_valid


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_random_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapters") / "sql",
                                num_layers=1, rank=2, scale=8.0, base=TINY_REPO_ID)


def test_show_adapter_json_and_human(adapter: Path, tiny_cached: str) -> None:
    r = run_mlxk("show", str(adapter), "--json")
    assert r.returncode == 0, r.stderr
    a = assert_valid(r.json, "show")["data"]["adapter"]
    assert a["path"] == str(adapter.resolve())
    assert (a["fine_tune_type"], a["rank"], a["scale"], a["dropout"]) == ("lora", 2, 8.0, 0.0)
    assert a["num_layers"] == 1 and a["layers"] == [1]          # the last of the tiny llama's 2 blocks
    assert a["modules"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert a["size_bytes"] == (adapter / "adapters.safetensors").stat().st_size
    # rank 2, one block: a (in x 2) + b (2 x out) per linear: q, k, v, o, gate, up, down
    sides = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)]
    assert a["parameter_count"] == sum(2 * (i + o) for i, o in sides)
    assert (a["base_model"], a["base_in_cache"], a["base_cache_name"]) == (TINY_REPO_ID, True, TINY_REPO_ID)
    human = run_mlxk("show", str(adapter))
    assert human.returncode == 0, human.stderr
    lines = dict(line.split(None, 1) if " " in line else (line, "") for line in human.stdout.splitlines())
    assert f"{TINY_REPO_ID} (in the cache)" in human.stdout
    assert "1 (blocks 1)" in human.stdout and lines["Rank"].strip() == "2"


def test_show_adapter_base_not_cached_and_config(adapter: Path, tmp_path: Path) -> None:
    r = run_mlxk("show", str(adapter), "--json", "--config")
    data = assert_valid(r.json, "show")["data"]
    assert data["adapter"]["base_in_cache"] is False and data["adapter"]["base_cache_name"] is None
    assert data["config"]["lora_parameters"]["rank"] == 2
    assert "(not in the cache)" in run_mlxk("show", str(adapter)).stdout


def test_show_adapter_imports_nothing_heavy(adapter: Path, tmp_path: Path, tiny_cached: str) -> None:
    r, modules = imported_modules(tmp_path, "show", str(adapter), "--json")
    assert r.returncode == 0, r.stderr
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_broken_adapter_folder(adapter: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(adapter, broken)
    (broken / "adapters.safetensors").unlink()
    r = run_mlxk("show", str(broken), "--json")
    assert r.returncode == 1 and "adapters.safetensors missing" in r.json["error"]["message"]
    (broken / "adapters.safetensors").write_bytes(b"junk")
    (broken / "adapter_config.json").write_text("{not json")
    r = run_mlxk("show", str(broken))
    assert r.returncode == 1 and "not valid JSON" in r.stderr


def test_show_reports_the_models_own_context_length(tiny_cached: str) -> None:
    r = run_mlxk("show", tiny_cached, "--json")
    meta = assert_valid(r.json, "show")["data"]["metadata"]
    assert meta["context_length"] == 2048          # the tiny llama's max_position_embeddings
    assert re.search(r"^Context length\s+2,048$", run_mlxk("show", tiny_cached).stdout, re.M)
