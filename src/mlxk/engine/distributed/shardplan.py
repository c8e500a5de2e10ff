"""Which parallel modes a model supports, and how it would be split across ranks.

Pure: reads ``config.json`` values, safetensors headers and the *source text* of the
installed mlx-lm model modules. Never imports mlx or mlx_lm, so `show` can use it.

A family supports ``tensor`` when its mlx-lm ``Model`` has ``shard(group)`` and
``pipeline`` when its inner model mixes in mlx-lm's ``PipelineMixin``; exactly what
``mlx_lm.utils.sharded_load`` checks, decided here without building the model.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlxk.cache import runtime
from mlxk.errors import NotRuntimeCompatible, ValidationError

MODES = ("tensor", "pipeline")

# Tensors that `model.shard()` splits across ranks (llama/qwen style families);
# everything else (embeddings, norms, head) is replicated on every rank.
_SHARDED_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def family(config: dict[str, Any]) -> str:
    """The mlx-lm model module for ``config`` (mlx-lm's own remapping, read by ``cache.runtime``)."""
    return runtime.lm_model_type(config)


@lru_cache(maxsize=256)
def _family_modes(fam: str) -> tuple[str, ...]:
    root = runtime.package_dir("mlx_lm")
    if root is None or not re.fullmatch(r"[A-Za-z0-9_]+", fam or "-"):
        return ()
    try:
        src = (root / "models" / f"{fam}.py").read_text(encoding="utf-8")
    except OSError:
        return ()
    modes = []
    if re.search(r"^    def shard\(", src, re.M):
        modes.append("tensor")
    if "PipelineMixin" in src:
        modes.append("pipeline")
    return tuple(modes)


def supported_modes(config: dict[str, Any]) -> list[str]:
    """Parallel modes the installed mlx-lm offers for this model (``[]``: none)."""
    return list(_family_modes(family(config)))


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("text_config")
    return {**inner, **{k: v for k, v in config.items() if k not in inner}} if isinstance(inner, dict) else config


def _int(cfg: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


@dataclass
class RankShard:
    rank: int
    layers: list[int]                 # [start, end) of transformer layers this rank runs
    attention_heads: int | None       # heads this rank computes (tensor: a slice; pipeline: all)
    kv_heads: int | None
    bytes: int                        # weight bytes this rank holds


@dataclass
class ShardPlan:
    mode: str
    world_size: int
    family: str
    num_layers: int
    attention_heads: int | None
    kv_heads: int | None
    total_bytes: int
    supported_modes: list[str]
    ranks: list[RankShard] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read config.json of {model_dir}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"config.json of {model_dir} is not an object")
    return data


def tensor_sizes(model_dir: Path) -> dict[str, int]:
    """``{tensor name: bytes}`` from the safetensors headers (no tensor data is read)."""
    sizes: dict[str, int] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        try:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            continue
        for name, meta in header.items():
            if name != "__metadata__" and isinstance(meta, dict):
                start, end = meta.get("data_offsets", (0, 0))
                sizes[name] = int(end) - int(start)
    return sizes


def pipeline_split(num_layers: int, world: int) -> list[tuple[int, int]]:
    """Layer range per rank, exactly as mlx-lm's ``PipelineMixin.pipeline`` splits:
    even split, low ranks get the extra layers, rank 0 runs the LAST layers."""
    base, extra = divmod(num_layers, world)
    split = [base + (1 if r < extra else 0) for r in range(world)]
    out = []
    for r in range(world):
        start = sum(split[r + 1:])
        out.append((start, start + split[r]))
    return out


def plan(config: dict[str, Any], world: int, mode: str | None = None,
         sizes: dict[str, int] | None = None) -> ShardPlan:
    """Check that the model can be split ``world`` ways in ``mode`` and describe the split.

    Raises before anything is loaded: NotRuntimeCompatible when the family supports no
    sharding, ValidationError for a mode it lacks or counts that do not divide.
    """
    if world < 1:
        raise ValidationError("need at least one rank")
    fam = family(config)
    modes = supported_modes(config)
    if not modes:
        raise NotRuntimeCompatible(
            f"model family '{fam or 'unknown'}' cannot be sharded: the installed mlx-lm offers "
            "neither tensor nor pipeline parallelism for it", supported_modes=[])
    if mode is None:
        mode = modes[0]
    if mode not in MODES:
        raise ValidationError(f"unknown parallel mode '{mode}' (tensor or pipeline)")
    if mode not in modes:
        raise ValidationError(
            f"model family '{fam}' does not support {mode} parallelism "
            f"(supported: {', '.join(modes)})", supported_modes=modes)
    cfg = _text_config(config)
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers") or 0
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv = _int(cfg, "num_key_value_heads") or heads
    sizes = sizes or {}
    total = sum(sizes.values())
    if mode == "tensor":
        _check_tensor(cfg, world, heads, kv)
    elif layers < world:
        raise ValidationError(
            f"pipeline parallelism needs at least one layer per rank: {layers} layers, {world} ranks")
    shards = []
    ranges = pipeline_split(layers, world) if mode == "pipeline" else [(0, layers)] * world
    for r in range(world):
        start, end = ranges[r]
        nbytes = 0
        for name, size in sizes.items():
            m = _LAYER_RE.search(name)
            if mode == "pipeline":
                if m is None or start <= int(m.group(1)) < end:
                    nbytes += size
            elif m is not None and any(f".{p}." in name for p in _SHARDED_PARTS):
                nbytes += size // world
            else:
                nbytes += size
        shards.append(RankShard(
            rank=r, layers=[start, end],
            attention_heads=(heads // world if heads and mode == "tensor" else heads),
            kv_heads=(kv // world if kv and mode == "tensor" else kv), bytes=nbytes))
    return ShardPlan(mode=mode, world_size=world, family=fam, num_layers=layers,
                     attention_heads=heads, kv_heads=kv, total_bytes=total,
                     supported_modes=modes, ranks=shards)


def _check_tensor(cfg: dict[str, Any], world: int, heads: int | None, kv: int | None) -> None:
    problems = []
    if heads is None:
        problems.append("config.json has no num_attention_heads")
    elif heads % world:
        problems.append(f"{heads} attention heads")
    if kv is not None and kv % world:
        problems.append(f"{kv} key/value heads")
    inter = _int(cfg, "intermediate_size")
    if inter is not None and inter % world:
        problems.append(f"intermediate size {inter}")
    q = cfg.get("quantization")
    if isinstance(q, dict) and isinstance(q.get("group_size"), int) and heads and inter:
        gs = q["group_size"]
        hidden = _int(cfg, "hidden_size") or 0
        head_dim = _int(cfg, "head_dim") or (hidden // heads if heads else 0)
        if (heads * head_dim // world) % gs or (inter // world) % gs:
            problems.append(f"quantization group size {gs} per rank slice")
    if problems:
        raise ValidationError(
            f"tensor parallelism over {world} ranks needs counts divisible by {world}: "
            + ", ".join(problems) + " do not divide; use fewer ranks or --parallel pipeline")


def plan_for_dir(model_dir: Path, world: int, mode: str | None = None) -> ShardPlan:
    return plan(read_config(model_dir), world, mode, tensor_sizes(model_dir))
