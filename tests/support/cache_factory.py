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
