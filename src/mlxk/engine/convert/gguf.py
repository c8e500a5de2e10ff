"""Turn a llama-family GGUF file into an MLX model directory mlx-lm can load.

``mx.load`` reads GGUF natively: F16/F32 tensors as arrays, Q4_0/Q4_1/Q8_0 as
MLX affine-quantized triples (``weight``/``scales``/``biases``, group size 32).
We rename the tensors to mlx-lm's llama names, write ``config.json`` (with a
per-layer quantization map where bit widths differ), ``model.safetensors``, and
a ``tokenizer.json`` built with the ``tokenizers`` library from the GGUF vocab.

GGUF stores the q/k projection rows in the interleaved ("traditional") RoPE
order, so the config says ``rope_traditional: true`` instead of permuting rows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxk.engine.convert.gguf_header import check_tensor_types
from mlxk.errors import ExecutionError, ValidationError

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TOKENIZERS = ("gpt2",)
SHARD_BYTES = 5 * 1024**3
# float32 by default: GGUF blocks carry float16 scales, but float16 compute is slow on
# MLX's CPU backend and overflows in this model family's activations (garbage output).
DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_DTYPE = "float32"

# GGUF tensor-name pieces -> mlx-lm llama module paths.
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}

# Pre-tokenizer split patterns (llama.cpp's `tokenizer.ggml.pre` names).
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_TOKENIZERS = {
    None: "gpt2", "default": "gpt2", "gpt-2": "gpt2", "gpt2": "gpt2",
    "smollm": "digits", "starcoder": "digits", "refact": "digits",
    "llama-bpe": "llama3", "llama3": "llama3", "smaug-bpe": "llama3", "dbrx": "llama3",
    "qwen2": "qwen2", "deepseek-r1-qwen": "qwen2",
}

# GGUF token types.
_CONTROL, _USER_DEFINED = 3, 4


@dataclass
class ConvertResult:
    source: Path
    output: Path
    architecture: str
    quantization: str
    tensor_count: int
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source), "output": str(self.output),
            "architecture": self.architecture, "quantization": self.quantization,
            "tensor_count": self.tensor_count, "size_bytes": self.size_bytes,
        }


def _scalar(value: Any) -> Any:
    """GGUF scalars arrive as 0-d mx.arrays; turn them into Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, metadata)`` of a GGUF file; a clear error when mlx cannot read it."""
    import mlx.core as mx

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"GGUF file not found: {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValidationError(f"not a GGUF file: {path}")
    check_tensor_types(path)
    try:
        tensors, metadata = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # mlx reports unsupported tensor types as ValueError/RuntimeError
        raise ValidationError(
            f"cannot read GGUF {path.name}: {exc} (supported tensor types: F16, F32, Q8_0, Q4_0, Q4_1)"
        ) from exc
    return tensors, metadata


def _meta(metadata: dict[str, Any], key: str, default: Any = None) -> Any:
    return _scalar(metadata[key]) if key in metadata else default


def mlx_name(gguf_name: str) -> str:
    """``blk.3.attn_q.scales`` -> ``model.layers.3.self_attn.q_proj.scales``."""
    stem, _, kind = gguf_name.rpartition(".")
    if kind not in ("weight", "scales", "biases", "bias"):
        raise ValidationError(f"unexpected tensor name in GGUF: {gguf_name}")
    if stem.startswith("blk."):
        _, index, part = stem.split(".", 2)
        if part not in _LAYER_NAMES:
            raise ValidationError(f"unsupported tensor in GGUF: {gguf_name}")
        return f"model.layers.{index}.{_LAYER_NAMES[part]}.{kind}"
    if stem not in _TOP_NAMES:
        raise ValidationError(f"unsupported tensor in GGUF: {gguf_name}")
    return f"{_TOP_NAMES[stem]}.{kind}"


def convert_weights(tensors: dict[str, Any], dtype_name: str = DEFAULT_DTYPE,
                    ) -> tuple[dict[str, Any], dict[str, int], str]:
    """Rename tensors, cast float tensors (incl. quantization scales) to ``dtype_name``.

    Returns ``(weights, bits_per_module, dtype_name)``.
    """
    import mlx.core as mx

    weights: dict[str, Any] = {}
    bits: dict[str, int] = {}
    for name, array in tensors.items():
        if name == "rope_freqs.weight":
            raise ValidationError("GGUF with a rope_freqs tensor (Llama 3.1 RoPE scaling) is not supported")
        weights[mlx_name(name)] = array
    float_types = {mx.float16, mx.float32, mx.bfloat16}
    for name, array in weights.items():
        if name.endswith(".scales"):
            module = name[: -len(".scales")]
            packed = weights.get(f"{module}.weight")
            if packed is None or packed.dtype != mx.uint32 or f"{module}.biases" not in weights:
                raise ValidationError(f"unsupported quantized tensor layout for {module}")
            # GGUF block formats read by mlx all use groups of 32 values.
            bits[module] = packed.shape[-1] * 32 // (array.shape[-1] * 32)
        elif name.endswith(".weight") and array.dtype not in float_types and array.dtype != mx.uint32:
            raise ValidationError(f"unsupported tensor type {array.dtype} for {name}")
    if dtype_name not in DTYPES:
        raise ValidationError(f"unsupported dtype '{dtype_name}' (choose from {', '.join(DTYPES)})")
    dtype = getattr(mx, dtype_name)
    for name, array in weights.items():
        if array.dtype in float_types and array.dtype != dtype:
            weights[name] = array.astype(dtype)
    return weights, bits, dtype_name


def quantization_block(bits: dict[str, int]) -> dict[str, Any] | None:
    """mlx-lm's ``quantization`` config: the common setting plus per-module exceptions."""
    if not bits:
        return None
    default = Counter(bits.values()).most_common(1)[0][0]
    block: dict[str, Any] = {"group_size": 32, "bits": default, "mode": "affine"}
    for module, b in sorted(bits.items()):
        if b != default:
            block[module] = {"group_size": 32, "bits": b}
    return block


def model_config(metadata: dict[str, Any], weights: dict[str, Any], bits: dict[str, int],
                 dtype: str, vocab_size: int, eos_ids: list[int]) -> dict[str, Any]:
    arch = _meta(metadata, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValidationError(
            f"unsupported GGUF architecture '{arch}' (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    p = f"{arch}."
    hidden = int(_meta(metadata, p + "embedding_length"))
    heads = int(_meta(metadata, p + "attention.head_count"))
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": int(_meta(metadata, p + "block_count")),
        "intermediate_size": int(_meta(metadata, p + "feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(_meta(metadata, p + "attention.head_count_kv", heads)),
        "head_dim": int(_meta(metadata, p + "attention.key_length", hidden // heads)),
        "rms_norm_eps": float(_meta(metadata, p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(_meta(metadata, p + "rope.freq_base", 10000.0)),
        "rope_traditional": True,
        "max_position_embeddings": int(_meta(metadata, p + "context_length", 2048)),
        "vocab_size": vocab_size,
        "tie_word_embeddings": "lm_head.weight" not in weights,
        "torch_dtype": dtype,
        "bos_token_id": _meta(metadata, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
    }
    scaling = _meta(metadata, p + "rope.scaling.type")
    if scaling and scaling != "none":
        if scaling != "linear":
            raise ValidationError(f"unsupported RoPE scaling '{scaling}' in GGUF")
        config["rope_scaling"] = {"type": "linear",
                                  "factor": float(_meta(metadata, p + "rope.scaling.factor", 1.0))}
    quant = quantization_block(bits)
    if quant:
        config["quantization"] = quant
        config["quantization_config"] = quant
    return config


def _pre_tokenizer(kind: str) -> Any:
    from tokenizers import Regex, pre_tokenizers

    if kind == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind == "digits":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    pattern = _LLAMA3_SPLIT if kind == "llama3" else _QWEN2_SPLIT
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def build_tokenizer(metadata: dict[str, Any]) -> tuple[Any, dict[str, Any], list[int]]:
    """``(tokenizers.Tokenizer, tokenizer_config, eos_ids)`` from the GGUF tokenizer metadata."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors

    model = _meta(metadata, "tokenizer.ggml.model")
    if model not in SUPPORTED_TOKENIZERS:
        raise ValidationError(
            f"unsupported GGUF tokenizer model '{model}' (supported: byte-level BPE 'gpt2')")
    pre = _meta(metadata, "tokenizer.ggml.pre")
    if pre not in _PRE_TOKENIZERS:
        raise ValidationError(f"unsupported GGUF pre-tokenizer '{pre}'")
    tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
    types = _meta(metadata, "tokenizer.ggml.token_type", [1] * len(tokens))
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tk.pre_tokenizer = _pre_tokenizer(_PRE_TOKENIZERS[pre])
    tk.decoder = decoders.ByteLevel()

    def token(key: str) -> str | None:
        idx = _meta(metadata, key)
        return tokens[idx] if idx is not None and 0 <= idx < len(tokens) else None

    bos = token("tokenizer.ggml.bos_token_id")
    add_bos = bool(_meta(metadata, "tokenizer.ggml.add_bos_token", False))
    if add_bos and bos is not None:
        bos_id = vocab[bos]
        tk.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                          special_tokens=[(bos, bos_id)]),
        ])
    else:
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    added = [AddedToken(t, special=ty == _CONTROL, normalized=False)
             for t, ty in zip(tokens, types, strict=False) if ty in (_CONTROL, _USER_DEFINED)]
    tk.add_tokens(added)

    eos_ids: list[int] = []
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        idx = _meta(metadata, key)
        if idx is not None and idx not in eos_ids:
            eos_ids.append(int(idx))
    tok_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(_meta(metadata, f"{_meta(metadata, 'general.architecture')}.context_length", 2048)),
        "bos_token": bos,
        "eos_token": tokens[eos_ids[0]] if eos_ids else None,
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
    }
    template = _meta(metadata, "tokenizer.chat_template")
    if template:
        tok_config["chat_template"] = template
    tok_config = {k: v for k, v in tok_config.items() if v is not None}
    return tk, tok_config, eos_ids


def _save_weights(out: Path, weights: dict[str, Any]) -> None:
    import mlx.core as mx

    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name in sorted(weights):
        nbytes = weights[name].nbytes
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = weights[name]
        size += nbytes
    if len(shards) == 1:
        mx.save_safetensors(str(out / "model.safetensors"), shards[0], metadata={"format": "mlx"})
        return
    index: dict[str, Any] = {"metadata": {"total_size": sum(a.nbytes for a in weights.values())},
                             "weight_map": {}}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        mx.save_safetensors(str(out / fname), shard, metadata={"format": "mlx"})
        index["weight_map"].update(dict.fromkeys(shard, fname))
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _readme(source: Path, metadata: dict[str, Any]) -> str:
    name = _meta(metadata, "general.name") or source.stem
    license_ = _meta(metadata, "general.license")
    front = ["---", "library_name: mlx", "tags:", "- mlx", "- gguf-converted"]
    if license_:
        front.append(f"license: {license_}")
    front.append("---")
    return "\n".join(front) + f"\n\n# {name}\n\nConverted from `{source.name}` by `mlxk convert`.\n"


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert_gguf(source: Path, output: Path, force: bool = False,
                 dtype: str = DEFAULT_DTYPE) -> ConvertResult:
    """Convert ``source`` (GGUF) into the MLX model directory ``output``.

    The directory is built under a temporary sibling name and renamed into
    place, so a failed conversion never leaves a half-written model behind.
    """
    source, output = Path(source).resolve(), Path(output).resolve()
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise ValidationError(f"output exists and is not empty: {output} (use --force to replace it)")
    tensors, metadata = read_gguf(source)
    arch = _meta(metadata, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValidationError(
            f"unsupported GGUF architecture '{arch}' (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    tokenizer, tok_config, eos_ids = build_tokenizer(metadata)
    weights, bits, dtype = convert_weights(tensors, dtype)
    vocab_size = int(_meta(metadata, f"{arch}.vocab_size", len(metadata["tokenizer.ggml.tokens"])))
    config = model_config(metadata, weights, bits, dtype, vocab_size, eos_ids)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.mlxk-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _save_weights(tmp, weights)
        _write_json(tmp / "config.json", config)
        tokenizer.save(str(tmp / "tokenizer.json"))
        _write_json(tmp / "tokenizer_config.json", tok_config)
        gen: dict[str, Any] = {"eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids}
        if config.get("bos_token_id") is not None:
            gen["bos_token_id"] = config["bos_token_id"]
        _write_json(tmp / "generation_config.json", gen)
        (tmp / "README.md").write_text(_readme(source, metadata), encoding="utf-8")
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(tmp, output)
    except OSError as exc:
        raise ExecutionError(f"cannot write {output}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    quant = config.get("quantization")
    label = f"{quant['bits']}bit" if quant else dtype
    size = sum(p.stat().st_size for p in output.iterdir() if p.is_file())
    return ConvertResult(source, output, arch, label, len(weights), size)
