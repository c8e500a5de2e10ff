"""What an encoder model's own files say about how to embed with it (pure: no mlx import).

Reads the sentence-transformers layout (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``, ``2_Dense``, ``2_Normalize``) and ``config.json``.
Used by the embeddings engine and by model detection (``list``/``show``/``health``),
so it must stay light: json and pathlib only.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk.cache.detect import is_embedding, local_files

# mlx_embeddings model modules that embed text (the others are vision/colpali models).
_TEXT_ENCODER_MODULES = ("bert", "xlm_roberta", "modernbert", "qwen3", "gemma3_text", "lfm2",
                         "llama_bidirec")

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len", "weightedmean", "lasttoken")
_ST = "sentence_transformers.models."


@dataclass(frozen=True)
class DenseSpec:
    path: str                  # folder inside the model dir, e.g. "2_Dense"
    in_features: int
    out_features: int
    bias: bool
    activation: str            # "identity" | "tanh"


@dataclass(frozen=True)
class EmbedSpec:
    """How to turn token states into one vector, as the model's own config says."""

    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int | None = None
    dimension: int | None = None
    dense: tuple[DenseSpec, ...] = ()
    sentence_transformers: bool = False
    unsupported: tuple[str, ...] = field(default_factory=tuple)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pooling_mode(cfg: dict[str, Any]) -> str:
    if isinstance(cfg.get("pooling_mode"), str):
        mode = cfg["pooling_mode"].lower()
        return {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max",
                "mean_sqrt_len_tokens": "mean_sqrt_len"}.get(mode, mode)
    order = (("pooling_mode_cls_token", "cls"), ("pooling_mode_mean_tokens", "mean"),
             ("pooling_mode_max_tokens", "max"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
             ("pooling_mode_weightedmean_tokens", "weightedmean"),
             ("pooling_mode_lasttoken", "lasttoken"))
    chosen = [name for key, name in order if cfg.get(key)]
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        return "mean"
    return "+".join(chosen)  # concatenated poolings: reported as unsupported


def _dense(model_dir: Path, rel: str) -> DenseSpec | None:
    cfg = _read_json(model_dir / rel / "config.json")
    if not isinstance(cfg, dict):
        return None
    act = str(cfg.get("activation_function", "torch.nn.modules.linear.Identity")).rsplit(".", 1)[-1]
    return DenseSpec(path=rel, in_features=int(cfg.get("in_features", 0)),
                     out_features=int(cfg.get("out_features", 0)), bias=bool(cfg.get("bias", True)),
                     activation=act.lower())


def read_spec(model_dir: Path, config: dict[str, Any] | None = None) -> EmbedSpec:
    """Pooling, normalization, length limit and output dimension for ``model_dir``.

    Without a sentence-transformers layout: mean pooling + L2 normalization (the common
    convention for plain BERT-style encoders).
    """
    model_dir = Path(model_dir)
    if config is None:
        config = _read_json(model_dir / "config.json") or {}
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    sbert = _read_json(model_dir / "sentence_bert_config.json")
    max_len = sbert.get("max_seq_length") if isinstance(sbert, dict) else None
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list):
        return EmbedSpec(max_seq_length=max_len, dimension=hidden)
    pooling, normalize, dense, unsupported = "mean", False, [], []
    dim = hidden
    for mod in sorted((m for m in modules if isinstance(m, dict)), key=lambda m: m.get("idx", 0)):
        kind = str(mod.get("type", "")).removeprefix(_ST)
        rel = str(mod.get("path", ""))
        if kind in ("Transformer", "models.Transformer") or kind.endswith("Transformer"):
            continue
        if kind == "Pooling":
            pcfg = _read_json(model_dir / rel / "config.json") or {}
            pooling = _pooling_mode(pcfg)
            dim = pcfg.get("word_embedding_dimension", dim)
            if pooling not in POOLING_MODES:
                unsupported.append(f"pooling '{pooling}'")
        elif kind == "Normalize":
            normalize = True
        elif kind == "Dense":
            spec = _dense(model_dir, rel)
            if spec is None or spec.activation not in ("identity", "tanh"):
                unsupported.append(f"Dense module '{rel}'")
            else:
                dense.append(spec)
                dim = spec.out_features
        else:
            unsupported.append(f"module '{kind}'")
    return EmbedSpec(pooling=pooling, normalize=normalize, max_seq_length=max_len, dimension=dim,
                     dense=tuple(dense), sentence_transformers=True, unsupported=tuple(unsupported))


def is_embedding_model(model_dir: Path, config: dict[str, Any] | None = None) -> bool:
    """True for encoder models, by the rule ``list``/``show`` use (``cache.detect.is_embedding``)."""
    model_dir = Path(model_dir)
    if config is None:
        config = _read_json(model_dir / "config.json") or {}
    return is_embedding(local_files(model_dir), config)


def embeddings_library_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("mlx-embeddings")
    except Exception:
        return None


def supported_families() -> tuple[str, ...]:
    """Text-encoder families the installed mlx_embeddings can build (found without importing it)."""
    spec = importlib.util.find_spec("mlx_embeddings")
    if spec is None or not spec.submodule_search_locations:
        return ()
    found = []
    for loc in spec.submodule_search_locations:
        models = Path(loc) / "models"
        for name in _TEXT_ENCODER_MODULES:
            if (models / f"{name}.py").is_file() or (models / name / "__init__.py").is_file():
                found.append(name)
    return tuple(sorted(set(found)))


def runtime_check(model_dir: Path, config: dict[str, Any] | None = None) -> str | None:
    """None when the embeddings library can run ``model_dir``; otherwise the reason why not."""
    model_dir = Path(model_dir)
    if config is None:
        config = _read_json(model_dir / "config.json")
        if not isinstance(config, dict):
            return "config.json missing or invalid"
    families = supported_families()
    if not families:
        return "mlx-embeddings is not installed (pip install 'mlx-knife[embed]')"
    family = str(config.get("model_type", "")).replace("-", "_")
    if family not in families:
        return (f"Unsupported embedding architecture '{family or '?'}' "
                f"(mlx-embeddings {embeddings_library_version() or '?'})")
    if not any(model_dir.glob("model*.safetensors")) and not any(model_dir.glob("weight*.safetensors")):
        return "no safetensors weights (mlx-embeddings needs model*.safetensors)"
    spec = read_spec(model_dir, config)
    if spec.unsupported:
        return "unsupported sentence-transformers " + ", ".join(spec.unsupported)
    for dense in spec.dense:
        if not any((model_dir / dense.path).glob("*.safetensors")):
            return f"Dense module '{dense.path}' has no safetensors weights (.bin needs torch)"
    return None
