"""Random LoRA adapters in mlx-lm's format, built with mlx-lm's own tuner utilities."""

from __future__ import annotations

import json
from pathlib import Path


def build_random_adapter(model_dir: Path, out: Path, *, num_layers: int, rank: int = 4,
                         scale: float = 10.0, seed: int = 7, base: str | None = None) -> Path:
    """Write ``adapter_config.json`` + ``adapters.safetensors`` into ``out`` for the model in
    ``model_dir``: LoRA layers on the last ``num_layers`` blocks, ``lora_b`` random (zero after
    mlx-lm's init, which would make the adapter a no-op). ``base``: the config's ``model`` key."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    lora = {"rank": rank, "scale": scale, "dropout": 0.0}
    model, _ = load(str(model_dir))
    model.freeze()
    linear_to_lora_layers(model, num_layers, lora)
    mx.random.seed(seed)
    weights = {}
    for name, value in tree_flatten(model.trainable_parameters()):
        if name.endswith("lora_b"):
            value = mx.random.normal(value.shape) * 0.5
        weights[name] = value
    assert weights and all(k.endswith(("lora_a", "lora_b")) for k in weights)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    config = {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": lora}
    if base is not None:
        config["model"] = base
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out
