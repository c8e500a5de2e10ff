"""A tiny *float Hugging Face* checkpoint, as a publisher would upload it, for ``convert`` tests.

It is the tiny llama of ``fixtures_models`` re-saved the way a PyTorch checkpoint looks:
bfloat16 safetensors with ``"format": "pt"``, ``torch_dtype`` in config.json and no MLX
marker (no ``quantization``, no ``library_name: mlx``), so ``list`` calls it PyTorch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.support.fixtures_models import tiny_llama_dir

TINY_HF_REPO_ID = "tiny-org/tiny-llama-hf"


def build_tiny_checkpoint(target: Path) -> Path:
    import mlx.core as mx

    src = tiny_llama_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(src / name, target / name)
    config = json.loads((src / "config.json").read_text())
    config["torch_dtype"] = "bfloat16"
    (target / "config.json").write_text(json.dumps(config, indent=2))
    weights = {k: v.astype(mx.bfloat16) for k, v in mx.load(str(src / "model.safetensors")).items()}
    mx.save_safetensors(str(target / "model.safetensors"), weights, metadata={"format": "pt"})
    (target / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny-llama-hf (random weights)\n")
    return target
