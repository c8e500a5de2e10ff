"""Data for ``list`` and ``show``: the contract's model object, metadata, files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlxk.cache import detect, scan
from mlxk.cache.evaluate import Evaluated, evaluate, evaluate_revision
from mlxk.cache.resolve import resolve
from mlxk.cache.safetensors import HeaderError, count_parameters, read_header
from mlxk.cache.scan import CachedRepo
from mlxk.errors import ValidationError
from mlxk.output.human import iso_utc

TOKENIZER_NAMES = ("tokenizer", "vocab", "merges.txt", "special_tokens_map.json", "added_tokens.json",
                   "chat_template", "spiece.model", "sentencepiece", "qwen.tiktoken")
CONFIG_NAMES = ("config.json", "generation_config.json", "preprocessor_config.json",
                "processor_config.json", "modules.json", "config_sentence_transformers.json",
                "sentence_bert_config.json")


def model_object(ev: Evaluated) -> dict[str, Any]:
    """The contract's model object."""
    d = ev.description
    return {
        "name": ev.name,
        "hash": ev.commit,
        "size_bytes": ev.size_bytes,
        "last_modified": iso_utc(ev.last_modified),
        "framework": d.framework,
        "model_type": d.model_type,
        "capabilities": list(d.capabilities),
        "health": "healthy" if ev.healthy else "unhealthy",
        "runtime_compatible": ev.runtime_compatible,
        "reason": ev.reason,
        "cached": ev.cached,
    }


def _listed(repo_id: str, base: Path) -> dict[str, Any]:
    repo = scan.scan_repo(repo_id, base)
    return model_object(evaluate_revision(repo, repo.default_revision))


SORT_KEYS = ("name", "size", "modified")


def sort_models(models: list[dict[str, Any]], by: str = "name") -> list[dict[str, Any]]:
    """``name`` A-Z; ``size`` largest first; ``modified`` newest first (ties: by name)."""
    if by not in SORT_KEYS:
        raise ValidationError(f"--sort takes one of {', '.join(SORT_KEYS)}, not '{by}'")
    models = sorted(models, key=lambda m: m["name"])
    if by == "size":
        models.sort(key=lambda m: m["size_bytes"], reverse=True)
    elif by == "modified":
        models.sort(key=lambda m: m["last_modified"] or "", reverse=True)
    return models


def list_models(pattern: str | None = None, root: Path | None = None, sort: str = "name") -> dict[str, Any]:
    """The ``list`` data: every matching repo's model object, sorted by ``sort`` (``SORT_KEYS``).

    Large caches are evaluated on all cores (``fanout``); each repo is independent.
    """
    from functools import partial

    from mlxk.cache import layout
    from mlxk.operations.fanout import fan_out

    base = layout.cache_root(root)
    ids = scan.list_repo_ids(base)
    if pattern:
        needle = pattern.lower()
        ids = [i for i in ids if needle in i.lower()]
    models = sort_models(fan_out(partial(_listed, base=base), ids), sort)
    return {"models": models, "count": len(models)}


# -- show -----------------------------------------------------------------------

def file_type(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    low = base.lower()
    if low.startswith("readme"):
        return "readme"
    if low.endswith((".safetensors", ".bin", ".gguf", ".npz", ".pt", ".pth")) or low.endswith(".index.json"):
        return "weights"
    if low.startswith(TOKENIZER_NAMES) or low.endswith((".tiktoken", ".model")):
        return "tokenizer"
    if low in CONFIG_NAMES or name.endswith("/config.json"):
        return "config"
    return "other"


_cfg_value = detect.config_value


def parameter_count(ev: Evaluated) -> int | None:
    headers = []
    for name, path in sorted(ev.files.items()):
        if name.endswith(".safetensors"):
            try:
                headers.append(read_header(path))
            except HeaderError:
                return None
    return count_parameters(headers, ev.description.config) if headers else None


def metadata(ev: Evaluated) -> dict[str, Any]:
    d = ev.description
    cfg = d.config or {}
    meta: dict[str, Any] = {
        "model_type": d.architecture,
        "architecture": d.architectures[0] if d.architectures else None,
        "quantization": d.quantization,
        "context_length": _cfg_value(cfg, *detect.CONTEXT_KEYS),
        "vocab_size": _cfg_value(cfg, "vocab_size"),
        "hidden_size": _cfg_value(cfg, "hidden_size", "d_model", "n_embd"),
        "num_attention_heads": _cfg_value(cfg, "num_attention_heads", "n_head"),
        "num_hidden_layers": _cfg_value(cfg, "num_hidden_layers", "n_layer", "num_layers"),
        "parameter_count": parameter_count(ev),
        "chat_template": d.has_chat_template,
        "engine": d.engine,
        "revisions": _revisions(ev.repo),
    }
    if d.model_type == "embedding":
        meta["embedding_dimension"] = d.embedding_dim
    meta["parallel_modes"] = _parallel_modes(cfg, d.model_type)
    return meta


def _parallel_modes(cfg: dict, model_type: str) -> list[str]:
    """Sharding modes (`run`/`serve --hosts --parallel`) mlx-lm offers for this model."""
    if model_type == "embedding" or not cfg:
        return []
    from mlxk.engine.distributed.shardplan import supported_modes

    return supported_modes(cfg)


def _revisions(repo: CachedRepo | None) -> list[dict[str, Any]]:
    if repo is None:
        return []
    return [{"hash": r.commit, "refs": list(r.refs), "size_bytes": r.size_bytes,
             "last_modified": iso_utc(r.last_modified)} for r in repo.revisions]


def show_model(ref: str, files: bool = False, config: bool = False,
               root: Path | None = None) -> dict[str, Any]:
    """A model's data, or an adapter's (``{"adapter": ...}``) when ``ref`` names a LoRA adapter folder."""
    from mlxk.operations.show_adapter import adapter_folder, show_adapter

    folder = adapter_folder(ref)
    if folder is not None:
        return show_adapter(folder, config, root)
    resolved = resolve(ref, root)
    if resolved.cached and (folder := adapter_folder(ref, Path(resolved.path))) is not None:
        return show_adapter(folder, config, root)
    ev = evaluate(resolved, root)
    model = model_object(ev)
    model["quantization"] = ev.description.quantization
    data: dict[str, Any] = {"model": model, "metadata": metadata(ev)}
    if files:
        entries = ev.revision.files if ev.revision else ()
        if not ev.cached:
            entries = tuple(scan.CachedFile(n, str(p), None, os.path.getsize(p), 0.0, True)
                            for n, p in sorted(ev.files.items()))
        data["files"] = [{"name": f.name, "size_bytes": f.size_bytes, "type": file_type(f.name)}
                         for f in entries]
    if config:
        data["config"] = ev.description.config
    return data
