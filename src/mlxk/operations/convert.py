"""`convert`: a GGUF file, a cached model or a local HF folder -> an MLX model folder or cache entry.

Everything that can be refused is refused before any work starts: the destination,
the source, and quantization settings mlx cannot use (``cache.runtime.quant_settings``).
The model is built in a temporary folder beside its destination and moved in at the
end (``cache.importer.publish_directory`` for the cache), so a failure leaves nothing.
Checkpoints are converted by mlx-lm itself (``engine/convert/checkpoint.py``); GGUF
files by our GGUF reader.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlxk import config
from mlxk.errors import ModelNotFound, ValidationError

if TYPE_CHECKING:
    from mlxk.engine.convert.checkpoint import Quantization

GGUF, CACHE, FOLDER = "gguf", "cache", "folder"
_DTYPE_BITS = {"float32": 32, "float16": 16, "bfloat16": 16}


@dataclass(frozen=True)
class ConvertOptions:
    """What to make: ``quantize`` with bits / group size / mode (None: mlx-lm's defaults)."""

    quantize: bool = False
    bits: int | None = None
    group_size: int | None = None
    mode: str | None = None
    dtype: str | None = None
    force: bool = False


@dataclass(frozen=True)
class Source:
    kind: str                 # GGUF | CACHE | FOLDER
    label: str                # what the envelope reports: the file, org/name, or the folder
    path: Path                # the GGUF file, the snapshot, or the folder
    repo_id: str | None = None
    commit: str | None = None


def convert(source: str, output: str | Path | None = None, cache_repo: str | None = None,
            options: ConvertOptions | None = None,
            info: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert ``source`` into ``output`` and/or the cache entry ``cache_repo``; return the envelope data."""
    from mlxk.cache.importer import publish_directory

    opts = options or ConvertOptions()
    say = info or (lambda _msg: None)
    out, repo_id = _destination(output, cache_repo, opts.force)
    src = classify(source)
    quant = _check_settings(src, opts)
    if src.kind != GGUF:
        _check_space(src, out.parent if out is not None else config.hub_cache(), quant, opts.dtype)
    say(f"Converting {src.label} ...")
    name = repo_id or (out.name if out else "model")
    facts: dict[str, Any]
    commit = None
    if out is not None:
        facts = _build_into(out, lambda d: _build(src, d, quant, opts, name, say))
        if repo_id is not None:
            say(f"Importing into the cache as {repo_id} ...")
            commit = publish_directory(out, repo_id, replace=opts.force)
    else:
        assert repo_id is not None
        hub = config.hub_cache()
        hub.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".mlxk-convert-", dir=hub))
        try:
            facts = _build(src, stage / "model", quant, opts, name, say)
            say(f"Importing into the cache as {repo_id} ...")
            commit = publish_directory(stage / "model", repo_id, replace=opts.force, move=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    cache = {"repo_id": repo_id, "commit": commit} if repo_id is not None else None
    return {"source": src.label, "source_kind": src.kind, "source_revision": src.commit,
            "destination": str(out) if out is not None else repo_id,
            "output": str(out) if out is not None else None, "cache": cache,
            "size_before_bytes": _size(src.path), **facts}


def _destination(output: str | Path | None, cache_repo: str | None,
                 force: bool) -> tuple[Path | None, str | None]:
    from mlxk.cache import layout
    from mlxk.cache.resolve import validate_name

    if output is None and cache_repo is None:
        raise ValidationError("give an output directory (-o DIR), or --cache org/name")
    repo_id = None
    if cache_repo is not None:
        repo_id = validate_name(cache_repo)
        if "/" not in repo_id:
            raise ValidationError(f"--cache needs an org/name repo id, got '{cache_repo}'")
        if layout.repo_dir(repo_id).exists() and not force:
            raise ValidationError(f"{repo_id} is already in the cache (use --force to add the "
                                  "conversion as its new main revision)", model=repo_id)
    out = Path(output).expanduser().resolve() if output is not None else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ValidationError(f"output exists and is not empty: {out} (use --force to replace it)")
    return out, repo_id


def classify(source: str) -> Source:
    """A ``.gguf`` file, else a model reference: a cached model or an explicit folder path."""
    from mlxk.cache.resolve import resolve

    path = Path(source).expanduser()
    if source.lower().endswith(".gguf") or path.is_file():
        if not path.is_file():
            raise ValidationError(f"GGUF file not found: {source}")
        return Source(GGUF, str(path.resolve()), path.resolve())
    try:
        resolved = resolve(source)
    except ModelNotFound as exc:
        if path.is_dir():  # a bare name is never a path (contract 3); say how to mean the folder
            raise ModelNotFound(f"{exc.message}; for the local folder write ./{source}") from exc
        raise
    if not resolved.cached:
        return Source(FOLDER, str(resolved.path), resolved.path)
    return Source(CACHE, resolved.display if resolved.revision_explicit else resolved.name,
                  resolved.path, resolved.repo_id, resolved.commit)


def _check_settings(src: Source, opts: ConvertOptions) -> Quantization | None:
    """The quantization to apply (None: none), after every refusal that needs no work."""
    from mlxk.cache import detect, runtime

    q_flags = [f for f, v in (("--q-bits", opts.bits), ("--q-group-size", opts.group_size),
                              ("--q-mode", opts.mode)) if v is not None]
    if q_flags and not opts.quantize:
        raise ValidationError(f"{', '.join(q_flags)} needs --quantize")
    if src.kind == GGUF:
        if opts.quantize:
            raise ValidationError("--quantize applies to safetensors checkpoints; GGUF tensors keep "
                                  "their own quantization")
        return None
    quant = None
    if opts.quantize:
        from mlxk.engine.convert.checkpoint import Quantization

        mode = opts.mode or "affine"
        bits, group_size = runtime.quant_settings(mode, opts.bits, opts.group_size)
        quant = Quantization(bits, group_size, mode)
    desc = detect.describe(src.path, repo_id=src.repo_id)
    if desc.model_type == "embedding":
        raise ValidationError(f"{src.label} is an embedding model; convert builds language models")
    if not desc.runtime_compatible:
        raise ValidationError(f"mlx-lm cannot convert {src.label}: {desc.runtime_reason}")
    if quant is not None and desc.quantization:
        raise ValidationError(f"{src.label} is already quantized ({desc.quantization}); "
                              "--quantize needs a float checkpoint")
    return quant


def _check_space(src: Source, dest: Path, quant: Quantization | None, dtype: str | None) -> None:
    """Refuse before any work when the converted weights cannot fit where they are built.

    The estimate counts the weights only: parameters (from the safetensors headers) times
    the bits each one takes afterwards (a 16-bit scale and bias per group when quantized).
    """
    from mlxk.cache.safetensors import HeaderError, count_parameters, read_header
    from mlxk.errors import ExecutionError

    try:
        headers = [read_header(p) for p in src.path.glob("*.safetensors")]
    except HeaderError:
        return  # mlx-lm says what is wrong with the weights
    params = count_parameters(headers)
    if not params:
        return
    if quant is not None:
        bits = quant.bits + 32 / quant.group_size
    else:
        cfg_dtype = json.loads((src.path / "config.json").read_text(encoding="utf-8")).get("torch_dtype")
        bits = _DTYPE_BITS.get(dtype or str(cfg_dtype),
                               8 * sum(h.actual_size for h in headers) / params)
    need = int(params * bits / 8)
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise ExecutionError(f"Not enough disk space for the converted model: about {need} bytes "
                             f"needed, {free} free on {probe}.", required_bytes=need, free_bytes=free)


def _build_into(out: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Build in a hidden sibling of ``out`` and rename it into place at the end."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.mlxk-convert-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        facts = build(tmp)
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        os.replace(tmp, out)
        return facts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(src: Source, target: Path, quant: Quantization | None, opts: ConvertOptions, name: str,
           say: Callable[[str], None]) -> dict[str, Any]:
    """Write the converted model to ``target`` (absent); return what the envelope says about it."""
    if src.kind == GGUF:
        from mlxk.engine.convert.gguf import DEFAULT_DTYPE, convert_gguf

        convert_gguf(src.path, target, dtype=opts.dtype or DEFAULT_DTYPE)
    else:
        from mlxk.engine.convert.checkpoint import convert_checkpoint, mlx_lm_version
        from mlxk.operations.convert_card import model_card

        convert_checkpoint(src.path, target, quant, opts.dtype, say)
        dtype = opts.dtype or json.loads((target / "config.json").read_text()).get("torch_dtype")
        card = model_card(name, src, quant, dtype, mlx_lm_version())
        (target / "README.md").write_text(card, encoding="utf-8")
    return _facts(target, opts.dtype)


def _facts(model_dir: Path, dtype: str | None) -> dict[str, Any]:
    from mlxk.cache.detect import quantization_label
    from mlxk.cache.safetensors import read_header

    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    q = cfg.get("quantization") if isinstance(cfg.get("quantization"), dict) else None
    dtype = dtype or cfg.get("torch_dtype")
    tensors = sum(len(read_header(p).tensors) for p in model_dir.glob("*.safetensors"))
    return {
        "architecture": str(cfg.get("model_type")),
        "quantization": quantization_label(cfg) or str(dtype or "float"),
        "bits": q.get("bits") if q else None,
        "group_size": q.get("group_size") if q else None,
        "mode": q.get("mode", "affine") if q else None,
        "dtype": dtype,
        "tensor_count": tensors,
        "size_bytes": _size(model_dir),
        "size_after_bytes": _size(model_dir),
    }


def _size(path: Path) -> int:
    """Bytes of a file, or of the files under a folder (each real file once, links followed)."""
    if path.is_file():
        return path.stat().st_size
    seen: dict[str, int] = {}
    for p in path.rglob("*"):
        if p.is_file():
            seen.setdefault(os.path.realpath(p), p.stat().st_size)
    return sum(seen.values())
