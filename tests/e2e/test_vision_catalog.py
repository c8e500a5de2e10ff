"""Vision models in `list`, `show` and `health` (no model is loaded: reads the cache only)."""

from __future__ import annotations

from pathlib import Path

from tests.support.cache_factory import add_repo
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid


def test_list_and_show_mark_vision_and_the_engine(tiny_vlm_cached: str) -> None:
    r = run_mlxk("list", "--json")
    assert r.returncode == 0, r.stderr
    model = {m["name"]: m for m in assert_valid(r.json)["data"]["models"]}[tiny_vlm_cached]
    assert "vision" in model["capabilities"] and model["runtime_compatible"] is True
    s = run_mlxk("show", tiny_vlm_cached, "--json")
    data = assert_valid(s.json)["data"]
    assert data["metadata"]["engine"] == "mlx-vlm"
    assert data["metadata"]["model_type"] == "qwen2_vl"
    human = run_mlxk("show", tiny_vlm_cached)
    assert "Engine" in human.stdout and "mlx-vlm" in human.stdout


def test_text_models_report_the_text_engine(tiny_cached: str) -> None:
    data = assert_valid(run_mlxk("show", tiny_cached, "--json").json)["data"]
    assert data["metadata"]["engine"] == "mlx-lm"
    assert "vision" not in data["model"]["capabilities"]


def test_health_checks_the_processor_files(tiny_vlm_path: Path, hub_cache: Path) -> None:
    files = {p.name: p for p in tiny_vlm_path.iterdir() if p.is_file()}
    good = add_repo(hub_cache, "mlxk-test/vl-good", files)
    assert good
    no_proc = {k: v for k, v in files.items()
               if k not in ("preprocessor_config.json", "processor_config.json")}
    add_repo(hub_cache, "mlxk-test/vl-no-processor", no_proc)
    no_template = {k: v for k, v in files.items()
                   if k not in ("chat_template.json", "tokenizer_config.json")}
    add_repo(hub_cache, "mlxk-test/vl-no-template", no_template)
    r = run_mlxk("health", "vl-", "--json")
    data = assert_valid(r.json)["data"]
    reasons = {e["name"]: e["reason"] for e in data["unhealthy"]}
    assert [e["name"] for e in data["healthy"]] == ["mlxk-test/vl-good"]
    assert "image processor config" in reasons["mlxk-test/vl-no-processor"]
    assert "without a chat template" in reasons["mlxk-test/vl-no-template"]
