"""list/show/health on the real test models (tiny llama, SmolLM2 converted from GGUF, MiniLM)."""

from __future__ import annotations

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid


def _mlx_param_count(model_dir) -> int:
    import mlx.core as mx  # the test process may import mlx; the CLI under test may not

    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        for name, arr in mx.load(str(f)).items():
            if name.endswith((".scales", ".biases")):
                continue
            total += arr.size * (32 // 4 if arr.dtype == mx.uint32 else 1)
    return total


def test_tiny_llama(tiny_cached: str, tiny_model_dir) -> None:
    r = run_mlxk("show", tiny_cached, "--json", "--files")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    m, meta = data["model"], data["metadata"]
    assert (m["framework"], m["model_type"], m["health"], m["runtime_compatible"]) == ("MLX", "chat", "healthy", True)
    assert meta["parameter_count"] == _mlx_param_count(tiny_model_dir)
    assert meta["chat_template"] is True and meta["num_hidden_layers"] == 2


@pytest.mark.slow
def test_smollm2_quantized_parameter_count(smollm2_cached: str) -> None:
    data = assert_valid(run_mlxk("show", smollm2_cached, "--json").json)["data"]
    assert data["model"]["runtime_compatible"] and data["model"]["health"] == "healthy"
    assert data["model"]["model_type"] == "chat"
    # SmolLM2-135M has 134.5M parameters; counted from packed quantized weights in headers
    assert 130e6 < data["metadata"]["parameter_count"] < 140e6, data["metadata"]


def test_minilm_embedding(minilm_cached: str) -> None:
    data = assert_valid(run_mlxk("show", "all-MiniLM", "--json").json)["data"]
    assert data["model"]["name"] == minilm_cached
    assert data["model"]["model_type"] == "embedding" and data["model"]["capabilities"] == ["embeddings"]
    assert data["model"]["runtime_compatible"] is True and data["metadata"]["embedding_dimension"] == 384


def test_health_verify_real_models(tiny_cached: str, minilm_cached: str) -> None:
    r = run_mlxk("health", "--verify", "--json")
    assert r.returncode == 0, r.stdout
    assert assert_valid(r.json)["data"]["summary"] == {"total": 2, "healthy_count": 2, "unhealthy_count": 0}
