"""LoRA adapters: a random adapter built here with mlx-lm's tuner utilities changes SmolLM2's
greedy answer, and `mlxk run --adapter-path` / `mlxk serve --adapter-path` give exactly what
`mlx_lm.generate` gives with the same adapter; `serve --lora` too (`<base>+<name>`, the plain base
unchanged)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.support.adapters import build_random_adapter
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2
from tests.support.fixtures_server import module_hf_home, start_serve

PROMPT = "What is the capital of France?"
N = 12
LORA = {"rank": 4, "scale": 10.0, "dropout": 0.0}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_adapter(build_smollm2(), tmp_path_factory.mktemp("adapter"), num_layers=4,
                                rank=LORA["rank"], scale=LORA["scale"])


def reference(adapter_path: Path | None) -> str:
    from mlx_lm import generate, load

    model, tok = load(str(build_smollm2()), adapter_path=str(adapter_path) if adapter_path else None)
    ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    return generate(model, tok, ids, max_tokens=N)


def run_answer(model: str, *extra: str) -> str:
    r = run_mlxk("run", model, PROMPT, "--temperature", "0", "--max-tokens", str(N), "--json", *extra)
    assert r.returncode == 0, r.stderr
    return r.json["data"]["response"]


def test_run_with_adapter_changes_output_and_matches_mlx_lm(smollm2_cached: str, adapter: Path) -> None:
    plain = run_answer(smollm2_cached)
    adapted = run_answer(smollm2_cached, "--adapter-path", str(adapter))
    assert adapted != plain
    assert adapted.strip() == reference(adapter).strip()


def test_serve_with_adapter_matches_mlx_lm(adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2()})
    sp = start_serve(home, "--model", SMOLLM2_REPO_ID, "--adapter-path", str(adapter), log_dir=Path(home))
    try:
        r = httpx.post(sp.base_url + "/v1/chat/completions", timeout=300, json={
            "messages": [{"role": "user", "content": PROMPT}], "max_tokens": N, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].strip() == reference(adapter).strip()
    finally:
        assert sp.stop() == 0


def test_serve_lora_naming_matches_mlx_lm(adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`serve --lora`: the quantized base's weights shared with the adapter (CPU kernels in place)."""
    home = module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2()})
    sp = start_serve(home, "--model", SMOLLM2_REPO_ID, "--lora", f"fr={adapter}", log_dir=Path(home))
    try:
        for model, want in ((f"{SMOLLM2_REPO_ID}+fr", reference(adapter)), (SMOLLM2_REPO_ID, reference(None))):
            r = httpx.post(sp.base_url + "/v1/chat/completions", timeout=300, json={
                "model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": N,
                "temperature": 0})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"].strip() == want.strip(), model
    finally:
        assert sp.stop() == 0


def test_bad_adapter_folder_is_refused(tiny_cached: str, tmp_path: Path) -> None:
    r = run_mlxk("run", tiny_cached, "hi", "--adapter-path", str(tmp_path / "nope"))
    assert r.returncode != 0 and "not a directory" in r.stderr
    (tmp_path / "adapter_config.json").write_text("{}")
    r = run_mlxk("serve", "--adapter-path", str(tmp_path))
    assert r.returncode != 0 and "adapters.safetensors missing" in r.stderr
