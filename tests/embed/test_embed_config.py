"""Pure parsing of sentence-transformers layouts (no model load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxk.engine.embeddings import config as embed_config
from mlxk.errors import ValidationError


def _write(d: Path, name: str, obj: object) -> None:
    (d / name).parent.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(obj))


def _modules(*kinds: tuple[str, str]) -> list[dict]:
    return [{"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{k}"}
            for i, (k, p) in enumerate(kinds)]


def test_minilm_layout(minilm_dir: Path) -> None:
    spec = embed_config.read_spec(minilm_dir)
    assert (spec.pooling, spec.normalize, spec.max_seq_length, spec.dimension) == ("mean", True, 256, 384)
    assert embed_config.is_embedding_model(minilm_dir)
    assert embed_config.runtime_check(minilm_dir) is None
    assert "bert" in embed_config.supported_families()


def test_cls_pooling_dense_and_no_normalize(tmp_path: Path) -> None:
    _write(tmp_path, "config.json", {"model_type": "bert", "hidden_size": 768})
    _write(tmp_path, "modules.json", _modules(("Transformer", ""), ("Pooling", "1_Pooling"),
                                              ("Dense", "2_Dense")))
    _write(tmp_path, "1_Pooling/config.json", {"word_embedding_dimension": 768,
                                                "pooling_mode_cls_token": True})
    _write(tmp_path, "2_Dense/config.json", {"in_features": 768, "out_features": 256, "bias": True,
                                              "activation_function": "torch.nn.modules.activation.Tanh"})
    spec = embed_config.read_spec(tmp_path)
    assert spec.pooling == "cls" and spec.normalize is False
    assert spec.dimension == 256 and spec.dense[0].activation == "tanh"
    assert spec.unsupported == ()


def test_pooling_mode_string_and_unknown_module(tmp_path: Path) -> None:
    _write(tmp_path, "config.json", {"model_type": "qwen3", "hidden_size": 1024})
    _write(tmp_path, "modules.json", _modules(("Transformer", ""), ("Pooling", "1_Pooling"),
                                              ("Normalize", "2_Normalize"), ("LayerNorm", "3")))
    _write(tmp_path, "1_Pooling/config.json", {"pooling_mode": "lasttoken"})
    spec = embed_config.read_spec(tmp_path)
    assert spec.pooling == "lasttoken" and spec.normalize
    assert spec.unsupported == ("module 'LayerNorm'",)


def test_plain_encoder_without_sentence_transformers_files(tmp_path: Path) -> None:
    _write(tmp_path, "config.json", {"model_type": "bert", "architectures": ["BertModel"],
                                     "hidden_size": 312})
    assert embed_config.is_embedding_model(tmp_path)
    spec = embed_config.read_spec(tmp_path)
    assert (spec.pooling, spec.normalize, spec.dimension) == ("mean", True, 312)


def test_chat_and_masked_lm_models_are_not_embedding_models(tmp_path: Path) -> None:
    _write(tmp_path / "a", "config.json", {"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    _write(tmp_path / "b", "config.json", {"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    assert not embed_config.is_embedding_model(tmp_path / "a")
    assert not embed_config.is_embedding_model(tmp_path / "b")


def test_detect_reports_dense_output_size(tmp_path: Path) -> None:
    from mlxk.cache.detect import describe

    _write(tmp_path, "config.json", {"model_type": "bert", "architectures": ["BertModel"],
                                     "hidden_size": 768})
    _write(tmp_path, "modules.json", _modules(("Transformer", ""), ("Pooling", "1_Pooling"),
                                              ("Dense", "2_Dense"), ("Normalize", "3_Normalize")))
    _write(tmp_path, "1_Pooling/config.json", {"word_embedding_dimension": 768})
    _write(tmp_path, "2_Dense/config.json", {"in_features": 768, "out_features": 256})
    (tmp_path / "model.safetensors").write_bytes(b"")
    desc = describe(tmp_path)
    assert desc.model_type == "embedding" and desc.embedding_dim == 256
    assert embed_config.read_spec(tmp_path).dimension == 256


@pytest.mark.parametrize("archs,embedding", [(["BertForMaskedLM"], False), (["BertModel"], True), ([], True),
                                             (["BertForSentenceEmbedding"], True)])
def test_list_show_and_serve_classify_encoders_alike(tmp_path: Path, archs: list[str], embedding: bool) -> None:
    """One rule (issue 12: `list`/`show` said "embedding" for BertForMaskedLM, `serve --model` not)."""
    from mlxk.cache.detect import describe
    from mlxk.cache.runnable import HTTP_EMBEDDING, HTTP_TEXT, check_runnable

    _write(tmp_path, "config.json", {"model_type": "bert", "architectures": archs})
    assert (describe(tmp_path).model_type == "embedding") is embedding
    assert embed_config.is_embedding_model(tmp_path) is embedding
    wrong = HTTP_TEXT if embedding else HTTP_EMBEDDING
    with pytest.raises(ValidationError, match="embedding model"):
        check_runnable("m", tmp_path, "text" if embedding else "embedding", wrong)
