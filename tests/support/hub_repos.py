"""Realistic model repos (valid safetensors, index, tokenizer) to serve from the fake Hub."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
    "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
}


def safetensors_bytes(tensors: dict[str, int], seed: int = 0) -> bytes:
    """A valid safetensors file with one U8 tensor of ``n`` random bytes per name."""
    header: dict = {"__metadata__": {"format": "mlx"}}
    offset = 0
    for name, n in tensors.items():
        header[name] = {"dtype": "U8", "shape": [n], "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    body = _random(offset, seed)
    return struct.pack("<Q", len(raw)) + raw + body


def _random(n: int, seed: int) -> bytes:
    if seed == 0:
        return os.urandom(n)
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def model_files(big_bytes: int = 4 * 1024 * 1024, *, shards: int = 2,
                model_type: str = "llama") -> dict[str, bytes]:
    """A sharded chat model: config, tokenizer, index, ``shards`` safetensors (the first large)."""
    files: dict[str, bytes] = {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"---\nlibrary_name: mlx\ntags: [mlx]\n---\n# test model\n",
        "config.json": json.dumps({**LLAMA_CONFIG, "model_type": model_type,
                                   "quantization": {"group_size": 64, "bits": 4}}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}).encode(),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}",
                                             "eos_token": "</s>"}).encode(),
        "special_tokens_map.json": b'{"eos_token": "</s>"}',
    }
    weight_map = {}
    per = [big_bytes] + [4096] * (shards - 1)
    for i, n in enumerate(per, start=1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.weight"
        files[name] = safetensors_bytes({tensor: n})
        weight_map[tensor] = name
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": sum(per)}, "weight_map": weight_map}).encode()
    return files


def big_file(files: dict[str, bytes]) -> str:
    return max(files, key=lambda k: len(files[k]))


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: symlink -> its target, file -> sha256, dir -> 'dir'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
