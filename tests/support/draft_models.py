"""Draft models for speculative decoding tests: a copy of a model with its weights perturbed,
so it shares the tokenizer and agrees with the model often but not always."""

from __future__ import annotations

import shutil
from pathlib import Path


def perturbed_copy(src: Path, dest: Path, noise: float = 0.3, seed: int = 5) -> Path:
    import mlx.core as mx

    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, dest / f.name)
    mx.random.seed(seed)
    for f in src.glob("*.safetensors"):
        weights = {k: v * (1 + noise * mx.random.normal(v.shape)).astype(v.dtype)
                   for k, v in mx.load(str(f)).items()}
        mx.save_safetensors(str(dest / f.name), weights, metadata={"format": "mlx"})
    return dest
