"""What the installed MLX stack can build, learned WITHOUT importing mlx, mlx-lm or mlx-embeddings.

The package folders are located with ``importlib.util.find_spec`` (which does not
import a top-level package), architectures are the file names in their
``models/`` folder, and mlx-lm's remapping tables are read by parsing
``mlx_lm/utils.py`` with ``ast``. Results are cached for the process.
"""

from __future__ import annotations

import ast
import os
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from mlxk.errors import ValidationError

# Helper modules in models/ folders that are not architectures.
_NOT_ARCHS = {"__init__", "base", "cache", "activations", "rope_utils", "switch_layers", "pipeline",
              "mla", "gated_delta", "bitlinear_layers", "ssm", "layers", "utils"}

# Quantization methods mlx-lm's loader knows how to read (config["quantization_config"]).
HF_QUANT_METHODS = {"bitnet", "mxfp4", "mxfp8", "fp8", "compressed-tensors", "modelopt", "awq", "gptq"}
# Settings mlx quantizes with (checked against ``mx.quantize`` by a test): mode -> (bits, group sizes),
# and mlx-lm's defaults for each mode (``mlx_lm.utils.quantize_model``).
QUANT_SETTINGS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "affine": ((2, 3, 4, 5, 6, 8), (32, 64, 128)),
    "mxfp4": ((4,), (32,)),
    "nvfp4": ((4,), (16,)),
    "mxfp8": ((8,), (32,)),
}
QUANT_DEFAULTS: dict[str, tuple[int, int]] = {
    "affine": (4, 64), "mxfp4": (4, 32), "nvfp4": (4, 16), "mxfp8": (8, 32)}
MLX_QUANT_MODES = set(QUANT_SETTINGS)
MLX_QUANT_BITS = set(QUANT_SETTINGS["affine"][0])


@cache
def package_dir(module: str) -> Path | None:
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def architectures(module: str) -> frozenset[str]:
    """Names of ``<module>/models/<arch>.py`` (or ``<arch>/`` packages)."""
    base = package_dir(module)
    if base is None:
        return frozenset()
    names: set[str] = set()
    try:
        with os.scandir(base / "models") as it:
            for e in it:
                if e.name.endswith(".py"):
                    names.add(e.name[:-3])
                elif e.is_dir() and not e.name.startswith("__"):
                    names.add(e.name)
    except OSError:
        return frozenset()
    return frozenset(names - _NOT_ARCHS)


def _assigned_literal(source: str, name: str) -> object:
    """The literal assigned to ``NAME = {...}`` at module level, parsed with ``ast``.

    Only that statement is parsed (not the whole module): it is found by its
    ``NAME =`` line and ends at the first line that closes the brace at column 0.
    """
    start = source.find(f"\n{name} = ")
    if start < 0:
        return None
    line_end = source.find("\n", start + 1)
    line = source[start + 1 : line_end if line_end > 0 else None]
    if line.rstrip().endswith("}"):
        fragment = line
    else:
        stop = source.find("\n}", start)
        if stop < 0:
            return None
        fragment = source[start + 1 : stop + 2]
    try:
        tree = ast.parse(fragment)
        node = tree.body[0]
        if isinstance(node, ast.Assign):
            return ast.literal_eval(node.value)
    except (SyntaxError, ValueError, IndexError):
        return None
    return None


@cache
def remapping(module: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """``MODEL_REMAPPING`` and ``MODEL_ARCHITECTURE_REMAPPING`` from ``<module>/utils.py``, via ast."""
    base = package_dir(module)
    if base is None:
        return {}, {}
    try:
        source = (base / "utils.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}, {}
    simple = _assigned_literal(source, "MODEL_REMAPPING")
    by_arch = _assigned_literal(source, "MODEL_ARCHITECTURE_REMAPPING")
    simple = {str(k): str(v) for k, v in simple.items()} if isinstance(simple, dict) else {}
    by_arch = ({k: str(v) for k, v in by_arch.items() if isinstance(k, tuple) and len(k) == 2}
               if isinstance(by_arch, dict) else {})
    return simple, by_arch


@cache
def version(dist: str) -> str:
    """Installed version of a distribution, or ``not installed``."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def lm_model_type(config: dict) -> str:
    """The module name mlx-lm would import for this config (after its remapping)."""
    model_type = str(config.get("model_type") or "")
    archs = config.get("architectures") or ()
    if isinstance(archs, str):
        archs = (archs,)
    simple, by_arch = remapping("mlx_lm")
    for arch in archs:
        hit = by_arch.get((model_type, str(arch)))
        if hit is not None:
            return hit
    return simple.get(model_type, model_type)


def lm_supports(config: dict) -> tuple[bool, str | None]:
    model_type = str(config.get("model_type") or "")
    if package_dir("mlx_lm") is None:
        return False, "mlx-lm is not installed"
    if not model_type:
        return False, "config.json has no model_type"
    if lm_model_type(config) in architectures("mlx_lm"):
        return True, None
    return False, f"Unsupported architecture '{model_type}' (mlx-lm {version('mlx-lm')})"


def vlm_supports(config: dict) -> tuple[bool, str | None]:
    """Whether the installed mlx-vlm (the ``vision`` extra) can build this vision model."""
    model_type = str(config.get("model_type") or "").replace("-", "_")
    if package_dir("mlx_vlm") is None:
        return False, "mlx-vlm is not installed (pip install 'mlx-knife[vision]')"
    if model_type in architectures("mlx_vlm"):
        return True, None
    return False, f"Unsupported vision architecture '{model_type}' (mlx-vlm {version('mlx-vlm')})"


def engine_for(config: dict | None, model_type: str) -> str | None:
    """The package that runs the model: mlx-vlm for vision models when it can, else mlx-lm
    (a vision model's text part), mlx-embeddings for encoders; None when none can."""
    if config is None:
        return None
    if model_type == "embedding":
        return "mlx-embeddings" if embeddings_supports(config)[0] else None
    if config.get("vision_config") and vlm_supports(config)[0]:
        return "mlx-vlm"
    return "mlx-lm" if lm_supports(config)[0] else None


def embeddings_supports(config: dict) -> tuple[bool, str | None]:
    model_type = str(config.get("model_type") or "")
    if package_dir("mlx_embeddings") is None:
        return False, "mlx-embeddings is not installed (pip install 'mlx-knife[embed]')"
    if not model_type:
        return False, "config.json has no model_type"
    simple, _ = remapping("mlx_embeddings")
    name = model_type.replace("-", "_")
    name = simple.get(name, name)
    if name in architectures("mlx_embeddings"):
        return True, None
    return False, f"Unsupported architecture '{model_type}' (mlx-embeddings {version('mlx-embeddings')})"


def quant_settings(mode: str, bits: int | None, group_size: int | None) -> tuple[int, int]:
    """``(bits, group_size)`` for quantizing in ``mode`` (None: mlx-lm's default for the mode).

    Raises:
        ValidationError: a setting mlx cannot quantize with; the message names the valid values.
    """
    if mode not in QUANT_SETTINGS:
        raise ValidationError(f"Unsupported quantization mode '{mode}' "
                              f"(choose from {', '.join(QUANT_SETTINGS)})")
    valid_bits, valid_groups = QUANT_SETTINGS[mode]
    bits = QUANT_DEFAULTS[mode][0] if bits is None else bits
    group_size = QUANT_DEFAULTS[mode][1] if group_size is None else group_size
    if bits not in valid_bits:
        raise ValidationError(f"mlx cannot quantize to {bits} bits in mode '{mode}' "
                              f"(valid bits: {', '.join(map(str, valid_bits))})")
    if group_size not in valid_groups:
        raise ValidationError(f"mlx cannot quantize with group size {group_size} in mode '{mode}' "
                              f"(valid group sizes: {', '.join(map(str, valid_groups))})")
    return bits, group_size


def quantization_supported(config: dict) -> tuple[bool, str | None]:
    """Is the quantization (if any) one the installed loader can read?"""
    q = config.get("quantization")
    if isinstance(q, dict):
        mode = str(q.get("mode", "affine"))
        bits = q.get("bits")
        if mode not in MLX_QUANT_MODES:
            return False, f"Unsupported quantization mode '{mode}'"
        if mode == "affine" and bits not in MLX_QUANT_BITS:
            return False, f"Unsupported quantization: {bits}-bit"
        return True, None
    qc = config.get("quantization_config")
    if isinstance(qc, dict) and "quant_method" in qc:
        method = str(qc["quant_method"])
        if method not in HF_QUANT_METHODS:
            return False, f"Unsupported quantization method '{method}' (mlx-lm {version('mlx-lm')})"
    return True, None
