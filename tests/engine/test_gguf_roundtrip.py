"""convert on a synthetic F32 llama GGUF written from the tiny model: same logits, same tokens.

llama.cpp's converter permutes the q/k rows of HF checkpoints into the interleaved RoPE
order; the GGUF we write here does the same, so the round trip checks the tensor names,
the ``rope_traditional`` choice, the tokenizer rebuilt from vocab + merges, and the config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _permute(w, n_head: int):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def write_gguf(tiny: Path, out: Path, dtype: str = "float32") -> None:
    import mlx.core as mx

    cfg = json.loads((tiny / "config.json").read_text())
    tok = json.loads((tiny / "tokenizer.json").read_text())
    weights = mx.load(str(tiny / "model.safetensors"))
    tensors = {}
    for name, w in weights.items():
        if name == "model.embed_tokens.weight":
            tensors["token_embd.weight"] = w
        elif name == "model.norm.weight":
            tensors["output_norm.weight"] = w
        else:
            _, _, idx, rest = name.split(".", 3)
            module = rest.rsplit(".", 1)[0]
            if module == "self_attn.q_proj":
                w = _permute(w, cfg["num_attention_heads"])
            elif module == "self_attn.k_proj":
                w = _permute(w, cfg["num_key_value_heads"])
            tensors[f"blk.{idx}.{_GGUF_NAMES[module]}.weight"] = w
    tensors = {k: v.astype(getattr(mx, dtype)) if v.ndim == 2 else v for k, v in tensors.items()}
    vocab = {**tok["model"]["vocab"], **{a["content"]: a["id"] for a in tok["added_tokens"]}}
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {a["id"] for a in tok["added_tokens"] if a["special"]}
    u32 = mx.uint32
    meta = {
        "general.architecture": "llama", "general.name": "tiny",
        "llama.block_count": mx.array(cfg["num_hidden_layers"], dtype=u32),
        "llama.context_length": mx.array(cfg["max_position_embeddings"], dtype=u32),
        "llama.embedding_length": mx.array(cfg["hidden_size"], dtype=u32),
        "llama.feed_forward_length": mx.array(cfg["intermediate_size"], dtype=u32),
        "llama.attention.head_count": mx.array(cfg["num_attention_heads"], dtype=u32),
        "llama.attention.head_count_kv": mx.array(cfg["num_key_value_heads"], dtype=u32),
        "llama.attention.layer_norm_rms_epsilon": mx.array(cfg["rms_norm_eps"], dtype=mx.float32),
        "llama.rope.freq_base": mx.array(cfg["rope_theta"], dtype=mx.float32),
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.merges": [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]],
        "tokenizer.ggml.token_type": mx.array([3 if i in specials else 1 for i in range(len(tokens))],
                                              dtype=mx.int32),
        "tokenizer.ggml.eos_token_id": mx.array(vocab["<|im_end|>"], dtype=u32),
        "tokenizer.ggml.bos_token_id": mx.array(vocab["<|im_start|>"], dtype=u32),
        "tokenizer.chat_template": json.loads((tiny / "tokenizer_config.json").read_text())["chat_template"],
    }
    mx.save_gguf(str(out), tensors, meta)


@pytest.fixture(scope="module")
def roundtrip(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlxk.engine.convert.gguf import convert_gguf

    tmp = tmp_path_factory.mktemp("gguf")
    write_gguf(tiny_model_dir, tmp / "tiny.f32.gguf")
    convert_gguf(tmp / "tiny.f32.gguf", tmp / "converted")
    return tmp / "converted"


def test_converted_f32_model_matches_the_original(tiny_model_dir: Path, roundtrip: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load

    config = json.loads((roundtrip / "config.json").read_text())
    assert config["rope_traditional"] is True and "quantization" not in config
    assert config["tie_word_embeddings"] is True and config["num_key_value_heads"] == 2
    m0, t0 = load(str(tiny_model_dir))
    m1, t1 = load(str(roundtrip))
    text = "The capital of France is Paris. Numbers: 42, 2024! <|im_end|>"
    ids0 = t0.encode(text, add_special_tokens=False)
    assert t1.encode(text, add_special_tokens=False) == ids0
    assert t1.decode(ids0) == t0.decode(ids0)
    assert t1.eos_token == "<|im_end|>" and t1.chat_template == t0.chat_template
    x = mx.array([ids0])
    diff = mx.abs(m0(x) - m1(x)).max().item()
    assert diff < 1e-4, diff


def test_f16_gguf_converts_close_to_the_original(tiny_model_dir: Path, tmp_path: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load

    from mlxk.engine.convert.gguf import convert_gguf
    from mlxk.engine.convert.gguf_header import tensor_types

    write_gguf(tiny_model_dir, tmp_path / "tiny.f16.gguf", dtype="float16")
    assert "F16" in set(tensor_types(tmp_path / "tiny.f16.gguf").values())
    convert_gguf(tmp_path / "tiny.f16.gguf", tmp_path / "converted", dtype="float16")
    config = json.loads((tmp_path / "converted" / "config.json").read_text())
    assert config["torch_dtype"] == "float16"
    m0, t0 = load(str(tiny_model_dir))
    m1, _ = load(str(tmp_path / "converted"))
    x = mx.array([t0.encode("Hello world! The capital of France", add_special_tokens=False)])
    a, b = m0(x), m1(x).astype(mx.float32)
    assert mx.abs(a - b).max().item() < 0.05


def test_unsupported_tokenizer_is_refused(tmp_path: Path) -> None:
    import mlx.core as mx

    from mlxk.engine.convert.gguf import convert_gguf
    from mlxk.errors import ValidationError

    path = tmp_path / "spm.gguf"
    mx.save_gguf(str(path), {"token_embd.weight": mx.zeros((4, 4))},
                 {"general.architecture": "llama", "tokenizer.ggml.model": "llama",
                  "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "a"]})
    with pytest.raises(ValidationError, match="tokenizer model 'llama'"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _handmade_gguf(path: Path, ggml_type: int, block_bytes: int) -> None:
    """A minimal GGUF v3 file with one 256-value tensor of the given GGML type."""
    import struct

    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    out += s("general.architecture") + struct.pack("<I", 8) + s("llama")
    out += s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 256, 1)
    out += struct.pack("<I", ggml_type) + struct.pack("<Q", 0)
    out += b"\0" * ((32 - len(out) % 32) % 32) + b"\0" * block_bytes
    path.write_bytes(out)


def test_k_quant_tensors_are_refused_not_dequantized(tmp_path: Path) -> None:
    from mlxk.engine.convert.gguf import convert_gguf
    from mlxk.engine.convert.gguf_header import tensor_types
    from mlxk.errors import ValidationError

    path = tmp_path / "q6k.gguf"
    _handmade_gguf(path, 14, 210)  # Q6_K: mx.load would hand back float16
    assert tensor_types(path) == {"token_embd.weight": "Q6_K"}
    with pytest.raises(ValidationError, match=r"unsupported GGUF tensor type.*Q6_K"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_header_types_of_the_real_q4_1_file() -> None:
    import zipfile

    from tests.support.fixtures_models import SMOLLM2_GGUF, SMOLLM2_REQ, SMOLLM2_WHEEL, find_wheel

    from mlxk.engine.convert.gguf_header import tensor_types

    with zipfile.ZipFile(find_wheel(SMOLLM2_WHEEL, SMOLLM2_REQ)) as zf, zf.open(SMOLLM2_GGUF) as f:
        head = f.read(8 * 1024 * 1024)  # the header (vocab + merges) fits easily
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
        tmp.write(head)
        tmp.flush()
        types = tensor_types(Path(tmp.name))
    assert types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.attn_q.weight"] == "Q4_1" and types["output_norm.weight"] == "F32"
    assert len(types) == 272


def _block_gguf(path: Path, ggml_type: int, rows: int, cols: int, blocks: bytes) -> None:
    """A GGUF v3 file holding one ``rows x cols`` tensor ``token_embd.weight`` of raw blocks."""
    import struct

    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    out += s("general.architecture") + struct.pack("<I", 8) + s("llama")
    out += s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", cols, rows)
    out += struct.pack("<I", ggml_type) + struct.pack("<Q", 0)
    out += b"\0" * ((32 - len(out) % 32) % 32) + blocks
    path.write_bytes(out)


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0"])
def test_block_quantized_tensors_keep_their_values(tmp_path: Path, kind: str) -> None:
    """Q8_0 and Q4_0 blocks arrive as MLX affine triples (group 32) with the right bit width."""
    import mlx.core as mx
    import numpy as np

    from mlxk.engine.convert.gguf import convert_weights, read_gguf

    rng = np.random.default_rng(0)
    rows, cols = 3, 64
    scales = rng.uniform(0.01, 0.1, size=(rows, cols // 32)).astype(np.float16)
    blocks, expected = b"", np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        for b in range(cols // 32):
            d = scales[r, b]
            if kind == "Q8_0":
                q = rng.integers(-127, 128, size=32).astype(np.int8)
                blocks += d.tobytes() + q.tobytes()
                expected[r, b * 32:(b + 1) * 32] = np.float32(d) * q
            else:
                q = rng.integers(0, 16, size=32).astype(np.uint8)
                packed = (q[:16] | (q[16:] << 4)).astype(np.uint8)
                blocks += d.tobytes() + packed.tobytes()
                expected[r, b * 32:(b + 1) * 32] = np.float32(d) * (q.astype(np.float32) - 8)
    path = tmp_path / f"{kind}.gguf"
    _block_gguf(path, {"Q8_0": 8, "Q4_0": 2}[kind], rows, cols, blocks)
    tensors, _ = read_gguf(path)
    weights, bits, dtype = convert_weights(tensors)
    want_bits = 8 if kind == "Q8_0" else 4
    assert bits == {"model.embed_tokens": want_bits} and dtype == "float32"
    w = weights
    got = mx.dequantize(w["model.embed_tokens.weight"], w["model.embed_tokens.scales"],
                        w["model.embed_tokens.biases"], group_size=32, bits=want_bits)
    assert np.allclose(np.array(got), expected, atol=1e-3), kind
