"""Build real HuggingFace cache trees on disk: blobs named by digest, relative symlinks, refs."""

from __future__ import annotations

import json
from pathlib import Path

from mlxk.cache.importer import import_directory

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
    "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
}


def add_repo(cache: Path, repo_id: str, files: dict[str, bytes | str | Path],
             commit: str | None = None, ref: str | None = "main", tmp: Path | None = None) -> str:
    """Write ``files`` as one revision of ``repo_id`` in ``cache``; return its commit hash.

    Values are bytes/str content or a Path to copy. Calling twice with another
    ``commit`` adds a second revision; identical files share blobs.
    """
    staging = (tmp or cache.parent) / f".staging-{repo_id.replace('/', '--')}-{commit or 'auto'}"
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name, content in files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.write_bytes(content.read_bytes())
        elif isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    try:
        return import_directory(staging, repo_id, root=cache, commit=commit, ref=ref or "")
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def config_json(**overrides: object) -> str:
    return json.dumps({**LLAMA_CONFIG, **overrides})


# -- realistic model builders (cache track) ---------------------------------------------------
import hashlib  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402

from mlxk.cache import layout  # noqa: E402

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "U8": 1, "I64": 8}
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TOOLS_TEMPLATE = ("{% if tools %}<|im_start|>system\nYou may call tools: {{ tools | tojson }}<|im_end|>\n"
                  "{% endif %}" + CHAT_TEMPLATE)
THINK_TEMPLATE = CHAT_TEMPLATE + "{% if add_generation_prompt %}<think>\n{% endif %}"


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]],
                      metadata: dict[str, str] | None = None) -> bytes:
    """A valid safetensors file: real header, zero-filled data of the exact size."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def llama_tensors(cfg: dict, quant_bits: int | None = 4, group_size: int = 64,
                  layers: range | None = None, embed: bool = True) -> dict[str, tuple[str, list[int]]]:
    """Tensor names/shapes of a tiny llama; quantized ones packed as MLX does (U32 + scales/biases)."""
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
    t: dict[str, tuple[str, list[int]]] = {}

    def linear(name: str, out_dim: int, in_dim: int) -> None:
        if quant_bits:
            t[f"{name}.weight"] = ("U32", [out_dim, in_dim * quant_bits // 32])
            t[f"{name}.scales"] = ("F16", [out_dim, in_dim // group_size])
            t[f"{name}.biases"] = ("F16", [out_dim, in_dim // group_size])
        else:
            t[f"{name}.weight"] = ("F16", [out_dim, in_dim])

    if embed:
        linear("model.embed_tokens", vocab, h)
    for i in layers if layers is not None else range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        linear(f"{p}.self_attn.q_proj", h, h)
        linear(f"{p}.self_attn.k_proj", kv, h)
        linear(f"{p}.self_attn.v_proj", kv, h)
        linear(f"{p}.self_attn.o_proj", h, h)
        linear(f"{p}.mlp.gate_proj", inter, h)
        linear(f"{p}.mlp.up_proj", inter, h)
        linear(f"{p}.mlp.down_proj", h, inter)
        t[f"{p}.input_layernorm.weight"] = ("F16", [h])
        t[f"{p}.post_attention_layernorm.weight"] = ("F16", [h])
    if embed:
        t["model.norm.weight"] = ("F16", [h])
    return t


def tokenizer_files(chat_template: str | None) -> dict[str, str]:
    vocab = {"<unk>": 0, "<|im_start|>": 1, "<|im_end|>": 2, **{chr(97 + i): 3 + i for i in range(26)}}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [
        {"id": 1, "content": "<|im_start|>", "special": True}, {"id": 2, "content": "<|im_end|>", "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}
    tcfg: dict[str, object] = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>",
                               "eos_token": "<|im_end|>", "unk_token": "<unk>", "model_max_length": 2048}
    if chat_template:
        tcfg["chat_template"] = chat_template
    return {"tokenizer.json": json.dumps(tok), "tokenizer_config.json": json.dumps(tcfg),
            "special_tokens_map.json": json.dumps({"eos_token": "<|im_end|>", "bos_token": "<|im_start|>"})}


def mlx_model_files(chat: bool = True, template: str | None = None, quant_bits: int | None = 4,
                    model_type: str = "llama", shards: int = 1, readme: bool = True,
                    extra_config: dict | None = None) -> dict[str, bytes | str]:
    """A tiny but structurally real MLX model: config (+quantization), safetensors, tokenizer."""
    cfg = {**LLAMA_CONFIG, "model_type": model_type, **(extra_config or {})}
    if quant_bits:
        cfg["quantization"] = {"group_size": 64, "bits": quant_bits}
    files: dict[str, bytes | str] = {"config.json": json.dumps(cfg)}
    meta = {"format": "mlx"} if quant_bits else {"format": "pt"}
    if shards == 1:
        files["model.safetensors"] = safetensors_bytes(llama_tensors(cfg, quant_bits), meta)
    else:
        n_layers = cfg["num_hidden_layers"]
        weight_map: dict[str, str] = {}
        for s in range(shards):
            name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            layers = range(s * n_layers // shards, (s + 1) * n_layers // shards)
            t = llama_tensors(cfg, quant_bits, layers=layers, embed=(s == 0))
            files[name] = safetensors_bytes(t, meta)
            weight_map.update(dict.fromkeys(t, name))
        files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map})
    tpl = template if template is not None else (CHAT_TEMPLATE if chat else None)
    files.update(tokenizer_files(tpl))
    if readme:
        files["README.md"] = "---\nlibrary_name: mlx\ntags:\n- mlx\n---\n# tiny test model\n"
    return files


def bert_files() -> dict[str, bytes | str]:
    """A sentence-transformers style BERT embedding model (tiny)."""
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32,
           "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 64,
           "vocab_size": 30, "max_position_embeddings": 128, "type_vocab_size": 2}
    tensors = {"embeddings.word_embeddings.weight": ("F32", [30, 32]),
               "embeddings.position_embeddings.weight": ("F32", [128, 32]),
               "encoder.layer.0.attention.self.query.weight": ("F32", [32, 32])}
    return {
        "config.json": json.dumps(cfg),
        "model.safetensors": safetensors_bytes(tensors),
        "modules.json": json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]),
        "1_Pooling/config.json": json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}),
        "sentence_bert_config.json": json.dumps({"max_seq_length": 128}),
        "vocab.txt": "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(97 + i) for i in range(25)]),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "BertTokenizer"}),
    }


def gguf_files() -> dict[str, bytes | str]:
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    return {"model.Q4_0.gguf": header + bytes(256), "README.md": "# a GGUF repo\n"}


def lfs_pointer(content: bytes) -> str:
    return ("version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{hashlib.sha256(content).hexdigest()}\nsize {len(content)}\n")


def revision_dir(cache: Path, repo_id: str, commit: str) -> Path:
    return layout.snapshots_dir(repo_id, cache) / commit


def blob_of(cache: Path, repo_id: str, commit: str, name: str) -> Path:
    link = revision_dir(cache, repo_id, commit) / name
    return Path(os.path.normpath(os.path.join(link.parent, os.readlink(link))))


# Broken variants: name -> (builder(cache, repo_id) -> commit, expected reason prefix)
def _add_then(cache: Path, repo_id: str, files: dict, mutate=None) -> str:
    commit = add_repo(cache, repo_id, files)
    if mutate:
        mutate(cache, repo_id, commit)
    return commit


def _without(files: dict, *names: str) -> dict:
    return {k: v for k, v in files.items() if k not in names}


def _truncate(cache: Path, repo_id: str, commit: str) -> None:
    blob = blob_of(cache, repo_id, commit, "model.safetensors")
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) - 100])


def _dangling(cache: Path, repo_id: str, commit: str) -> None:
    (layout.refs_dir(repo_id, cache) / "main").write_text("f" * 40)
    import shutil

    shutil.rmtree(revision_dir(cache, repo_id, commit))


def _break_link(cache: Path, repo_id: str, commit: str) -> None:
    blob_of(cache, repo_id, commit, "tokenizer.json").unlink()


def make_tokenizer_json_a_directory(cache: Path, repo_id: str, commit: str) -> None:
    """A folder where ``tokenizer.json`` should be (``health`` reports it; loading must refuse)."""
    link = revision_dir(cache, repo_id, commit) / "tokenizer.json"
    link.unlink()
    link.mkdir()
    (link / "x").write_text("{}")


def _incomplete(cache: Path, repo_id: str, commit: str) -> None:
    (layout.blobs_dir(repo_id, cache) / ("e" * 64 + ".incomplete")).write_bytes(b"partial")


def _missing_shard_files() -> dict:
    files = mlx_model_files(shards=2)
    return _without(files, "model-00002-of-00002.safetensors")


def _unindexed_shards() -> dict:
    return _without(mlx_model_files(shards=2), "model.safetensors.index.json")


BROKEN_VARIANTS: dict[str, tuple] = {
    "config_missing": (lambda c, r: _add_then(c, r, _without(mlx_model_files(), "config.json")),
                       "config.json missing"),
    "config_invalid": (lambda c, r: _add_then(c, r, {**mlx_model_files(), "config.json": "{not json"}),
                       "config.json invalid"),
    "config_empty": (lambda c, r: _add_then(c, r, {**mlx_model_files(), "config.json": ""}),
                     "config.json empty"),
    "lfs_pointer": (lambda c, r: _add_then(c, r, {**mlx_model_files(),
                                                   "model.safetensors": lfs_pointer(b"x" * 5000)}),
                    "LFS pointer instead of file: model.safetensors"),
    "missing_shard": (lambda c, r: _add_then(c, r, _missing_shard_files()),
                      "missing shard: model-00002-of-00002.safetensors"),
    "shards_without_index": (lambda c, r: _add_then(c, r, _unindexed_shards()),
                             "sharded weights without index: model-00001-of-00002.safetensors"),
    "truncated_safetensors": (lambda c, r: _add_then(c, r, mlx_model_files(), _truncate),
                              "truncated safetensors: model.safetensors"),
    "dangling_ref": (lambda c, r: _add_then(c, r, mlx_model_files(), _dangling),
                     "dangling ref 'main' -> ffffffffffff"),
    "broken_symlink": (lambda c, r: _add_then(c, r, mlx_model_files(), _break_link),
                       "broken symlink: tokenizer.json"),
    "incomplete_blob": (lambda c, r: _add_then(c, r, mlx_model_files(), _incomplete),
                        "partial download: 1 incomplete blob"),
    "no_weights": (lambda c, r: _add_then(c, r, _without(mlx_model_files(), "model.safetensors")),
                   "no weights found"),
    "no_tokenizer": (lambda c, r: _add_then(c, r, _without(mlx_model_files(), "tokenizer.json",
                                                           "tokenizer_config.json",
                                                           "special_tokens_map.json")),
                     "tokenizer files missing"),
}


def add_broken(cache: Path, variant: str, repo_id: str | None = None) -> tuple[str, str, str]:
    """Add one broken variant; return (repo_id, commit, expected reason prefix)."""
    builder, reason = BROKEN_VARIANTS[variant]
    repo_id = repo_id or f"broken-org/{variant.replace('_', '-')}"
    return repo_id, builder(cache, repo_id), reason
