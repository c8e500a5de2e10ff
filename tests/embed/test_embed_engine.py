"""The embeddings engine on the real all-MiniLM-L6-v2, against sentence-transformers' own vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlxk.engine.embeddings import config as embed_config
from mlxk.errors import NotRuntimeCompatible, ValidationError

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"

pytestmark = pytest.mark.slow


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_reference_file_is_what_the_tests_expect(reference) -> None:
    assert len(reference["items"]) == 20
    assert reference["dimensions"] == 384
    assert all(len(i["embedding"]) == 384 for i in reference["items"])


@pytest.fixture(scope="module")
def ours(minilm_model, reference):
    """All 20 reference sentences embedded once (an odd batch size mixes lengths in a batch)."""
    return minilm_model.embed([i["text"] for i in reference["items"]], batch_size=7)


def test_matches_sentence_transformers_for_20_sentences(ours, reference) -> None:
    assert ours.vectors.shape == (20, 384)
    for item, vec in zip(reference["items"], ours.vectors, strict=False):
        cos = _cos(vec, np.array(item["embedding"]))
        assert cos >= 0.999, f"{item['text']!r}: cosine {cos:.6f}"


def test_token_counts_are_real(ours, reference) -> None:
    assert ours.token_counts == [i["tokens"] for i in reference["items"]]
    assert ours.total_tokens == sum(i["tokens"] for i in reference["items"])


def test_batch_size_does_not_change_vectors(minilm_model, ours, reference) -> None:
    picks = [0, 9, 15, 17]  # short, medium, one token, longest: padded together below
    texts = [reference["items"][i]["text"] for i in picks]
    alone = minilm_model.embed(texts, batch_size=1).vectors
    together = minilm_model.embed(texts, batch_size=64).vectors
    assert np.allclose(alone, together, atol=1e-5)
    assert np.allclose(together, ours.vectors[picks], atol=1e-5)


def test_vectors_are_l2_normalized(minilm_model) -> None:
    vecs = minilm_model.embed(["one", "two words", ""]).vectors
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_paraphrase_scores_higher_than_unrelated(minilm_model) -> None:
    a, para, other = minilm_model.embed([
        "How can I change my account password?",
        "What are the steps to reset the password of my account?",
        "The volcano erupted and covered the village in ash.",
    ]).vectors
    assert _cos(a, para) > _cos(a, other) + 0.3


def test_spec_read_from_sentence_transformers_config(minilm_model) -> None:
    assert minilm_model.spec.pooling == "mean"
    assert minilm_model.spec.normalize is True
    assert minilm_model.max_length == 256  # sentence_bert_config.json, not the 512 positions
    assert minilm_model.dimensions == 384


def test_truncation_and_no_truncate(minilm_model) -> None:
    long_text = "word " * 400
    ids, truncated = minilm_model.tokenize([long_text, "short"], truncate=True)
    assert len(ids[0]) == 256 and truncated == [True, False]
    assert ids[0][-1] == minilm_model.tokenizer.sep_token_id  # cut before the closing [SEP]
    with pytest.raises(ValidationError, match=r"402 tokens.*limit of 256"):
        minilm_model.tokenize(["short", long_text], truncate=False)


def test_token_id_input(minilm_model) -> None:
    ids = minilm_model.tokenizer(["The cat sits on the mat."])["input_ids"]
    from_ids = minilm_model.embed_ids([list(ids[0])]).vectors[0]
    from_text = minilm_model.embed(["The cat sits on the mat."]).vectors[0]
    assert _cos(from_ids, from_text) > 0.99999
    with pytest.raises(ValidationError, match="outside the vocabulary"):
        minilm_model.check_token_ids([[101, 10**7, 102]])


def test_cls_pooling_and_no_normalize_follow_the_config(minilm_model, minilm_dir, tmp_path) -> None:
    """A copy of the model whose config says CLS pooling and no Normalize module behaves so."""
    from mlxk.engine.embeddings.encoder import load_embedding_model

    copy = tmp_path / "cls-model"
    copy.mkdir()
    for f in minilm_dir.iterdir():
        if f.is_file():
            (copy / f.name).symlink_to(f)
    (copy / "1_Pooling").mkdir()
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False}))
    (copy / "modules.json").unlink()
    (copy / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    cls_model = load_embedding_model(copy, "cls-copy")
    assert cls_model.spec.pooling == "cls" and cls_model.spec.normalize is False
    text = "The cat sits on the mat."
    ids, _ = cls_model.tokenize([text])
    import mlx.core as mx

    hidden = minilm_model.model(mx.array([ids[0]]), attention_mask=mx.ones((1, len(ids[0])))
                                ).last_hidden_state
    expected = np.array(hidden[0, 0])
    got = cls_model.embed([text]).vectors[0]
    assert np.allclose(got, expected, atol=1e-4)
    assert abs(float(np.linalg.norm(got)) - 1.0) > 0.01  # really not normalized


def test_unsupported_architecture_is_refused_before_loading(tmp_path) -> None:
    from mlxk.engine.embeddings.encoder import load_embedding_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5EncoderModel"]}))
    (tmp_path / "modules.json").write_text("[]")
    assert embed_config.runtime_check(tmp_path) is not None
    with pytest.raises(NotRuntimeCompatible, match="Unsupported embedding architecture 't5'"):
        load_embedding_model(tmp_path)


def test_missing_weights_are_a_clear_error(minilm_dir, tmp_path) -> None:
    from mlxk.engine.embeddings.encoder import load_embedding_model

    for name in ("config.json", "modules.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    with pytest.raises(NotRuntimeCompatible, match="safetensors"):
        load_embedding_model(tmp_path)


def test_dense_module_is_applied(minilm_model, minilm_dir, tmp_path) -> None:
    """A sentence-transformers Dense layer (tanh) after pooling, then Normalize: as ST computes it."""
    import mlx.core as mx

    from mlxk.engine.embeddings.encoder import load_embedding_model

    copy = tmp_path / "dense-model"
    copy.mkdir()
    for f in minilm_dir.iterdir():
        if f.is_file() and f.name != "modules.json":
            (copy / f.name).symlink_to(f)
    (copy / "1_Pooling").symlink_to(minilm_dir / "1_Pooling")
    (copy / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (copy / "2_Dense").mkdir()
    (copy / "2_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 384, "out_features": 64, "bias": True,
         "activation_function": "torch.nn.modules.activation.Tanh"}))
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.2, (64, 384)).astype(np.float32)
    b = rng.normal(0, 0.1, (64,)).astype(np.float32)
    mx.save_safetensors(str(copy / "2_Dense" / "model.safetensors"),
                        {"linear.weight": mx.array(w), "linear.bias": mx.array(b)})
    dense = load_embedding_model(copy, "dense-copy")
    assert dense.dimensions == 64 and dense.spec.normalize
    texts = ["The cat sits on the mat.", "A second, longer sentence about something else."]
    # The base model's vectors are mean-pooled AND normalized; undo nothing, recompute pooling.
    ids, _ = minilm_model.tokenize(texts)
    pooled = []
    for row in ids:
        hidden = np.array(minilm_model.model(mx.array([row]), attention_mask=mx.ones((1, len(row))))
                          .last_hidden_state[0])
        pooled.append(hidden.mean(axis=0))
    expected = np.tanh(np.array(pooled) @ w.T + b)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(dense.embed(texts).vectors, expected, atol=1e-4)
