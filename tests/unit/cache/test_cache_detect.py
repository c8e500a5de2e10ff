"""Framework, model type, capabilities and runtime compatibility, without importing mlx."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support import cache_factory as cf
from tests.support import fixtures_cache as fc

from mlxk.cache import detect, runtime
from mlxk.operations.models import list_models


@pytest.fixture
def zoo(model_zoo) -> dict[str, dict]:
    return {m["name"]: m for m in list_models()["models"]}


def test_zoo_classification(zoo: dict[str, dict]) -> None:
    expect = {
        fc.CHAT: ("MLX", "chat", True, None),
        fc.BASE: ("MLX", "base", True, None),
        fc.TOOLS: ("MLX", "chat", True, None),
        fc.THINK: ("MLX", "chat", True, None),
        fc.EMBED: ("PyTorch", "embedding", True, None),
        fc.GGUF: ("GGUF", "unknown", False, "GGUF weights: run 'mlxk convert' first"),
        fc.PYTORCH: ("PyTorch", "base", True, None),
        fc.BIN_ONLY: ("PyTorch", "base", False, "PyTorch .bin weights only: safetensors required"),
        fc.UNSUPPORTED: ("MLX", "chat", False,
                         f"Unsupported architecture 'foo' (mlx-lm {runtime.version('mlx-lm')})"),
    }
    for name, (fw, mt, ok, reason) in expect.items():
        m = zoo[name]
        assert (m["framework"], m["model_type"], m["runtime_compatible"], m["reason"]) == (fw, mt, ok, reason), name
        assert m["health"] == "healthy", (name, m["reason"])


def test_capabilities(zoo: dict[str, dict]) -> None:
    assert zoo[fc.CHAT]["capabilities"] == ["text-generation", "chat"]
    assert zoo[fc.BASE]["capabilities"] == ["text-generation"]
    assert "tools" in zoo[fc.TOOLS]["capabilities"]
    assert "reasoning" in zoo[fc.THINK]["capabilities"]
    assert "reasoning" not in zoo[fc.CHAT]["capabilities"]
    assert zoo[fc.EMBED]["capabilities"] == ["embeddings"]


def test_mlx_label_sources(tmp_path: Path) -> None:
    files = cf.mlx_model_files(quant_bits=None, readme=False)
    d = tmp_path / "m"
    for name, content in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    assert detect.describe(d).framework == "PyTorch"
    assert detect.describe(d, repo_id="mlx-community/x").framework == "MLX"
    (d / "README.md").write_text("---\nlibrary_name: mlx\n---\nhi\n")
    assert detect.describe(d).framework == "MLX"
    (d / "README.md").unlink()
    (d / "model.safetensors").write_bytes(cf.safetensors_bytes({"a": ("F16", [2])}, {"format": "mlx"}))
    assert detect.describe(d).framework == "MLX"


def test_remapped_architecture_is_supported() -> None:
    simple, _ = runtime.remapping("mlx_lm")
    assert simple.get("mistral") == "llama"
    assert runtime.lm_supports({"model_type": "mistral"}) == (True, None)
    assert runtime.lm_supports({"model_type": "llama"}) == (True, None)
    ok, reason = runtime.lm_supports({"model_type": "foo"})
    assert not ok and reason == f"Unsupported architecture 'foo' (mlx-lm {runtime.version('mlx-lm')})"


def test_embeddings_library_checked_for_encoders() -> None:
    assert runtime.embeddings_supports({"model_type": "bert"}) == (True, None)
    ok, reason = runtime.embeddings_supports({"model_type": "no-such-encoder"})
    assert not ok and "Unsupported architecture 'no-such-encoder' (mlx-embeddings" in reason


def test_quantization_readability() -> None:
    assert runtime.quantization_supported({"quantization": {"bits": 4, "group_size": 64}})[0]
    assert not runtime.quantization_supported({"quantization": {"bits": 7, "group_size": 64}})[0]
    assert runtime.quantization_supported({"quantization_config": {"quant_method": "awq"}})[0]
    ok, reason = runtime.quantization_supported({"quantization_config": {"quant_method": "bitsandbytes"}})
    assert not ok and "bitsandbytes" in reason


def test_real_minilm_layout_is_embedding(minilm_dir: Path) -> None:
    d = detect.describe(minilm_dir)
    assert d.model_type == "embedding" and d.embedding_dim == 384 and d.runtime_compatible
