"""Per-model generation options for `serve`: the command-line defaults, overridden per model
by ``--model-options FILE`` (JSON or TOML: ``{"model name": {"max_kv_size": 4096, ...}}``).

``adapter_path`` (a LoRA adapter folder the model itself runs with) and the folders of ``loras``
(``{name = "dir"}``: adapters served next to the plain model as ``<model>+<name>``, see
``server/loras.py``) are relative to FILE's folder. A model matches a FILE entry by its full cache
name (``org/name``) or by the part after the last ``/``; the full name wins. Unknown models or keys
are refused at start-up. No mlx here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxk.engine.types import CacheOptions
from mlxk.errors import ValidationError

CACHE_KEYS = ("max_kv_size", "kv_bits", "kv_group_size", "quantized_kv_start")
PATH_KEYS = ("adapter_path",)
SPEC_KEYS = ("prompt_lookup",)   # speculative decoding in the batch (engine.batch_speculative)
LORAS = "loras"
KNOWN_KEYS = frozenset((*CACHE_KEYS, *PATH_KEYS, *SPEC_KEYS, LORAS))


def read_file(path: str) -> dict[str, dict[str, Any]]:
    """Parse and shape-check ``--model-options FILE``."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--model-options: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"--model-options: {path} is not valid {p.suffix.lstrip('.') or 'JSON'}: "
                              f"{exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValidationError(f"--model-options: {path} must map model names to tables of options")
    for model, opts in data.items():
        unknown = sorted(set(opts) - KNOWN_KEYS)
        if unknown:
            raise ValidationError(f"--model-options: unknown option(s) {', '.join(unknown)} for {model} "
                                  f"(known: {', '.join(sorted(KNOWN_KEYS))})")
        for key, value in opts.items():
            if key == LORAS:
                opts[key] = _loras(value, model, p.parent)
            elif key in PATH_KEYS:
                if not isinstance(value, str):
                    raise ValidationError(f"--model-options: {model}.{key} must be a path")
                opts[key] = str((p.parent / Path(value).expanduser()).resolve())  # relative to FILE
            elif value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValidationError(f"--model-options: {model}.{key} must be an integer")
            elif key in SPEC_KEYS and value is not None:
                check_prompt_lookup(value, f"--model-options: {model}.{key}")
    return data


def check_prompt_lookup(value: int, where: str = "--prompt-lookup") -> int:
    """Draft tokens per step: 1..MAX_DRAFT."""
    from mlxk.engine.prompt_lookup import MAX_DRAFT

    if not 1 <= value <= MAX_DRAFT:
        raise ValidationError(f"{where} must be between 1 and {MAX_DRAFT} (got {value})")
    return value


def _loras(value: object, model: str, folder: Path) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError(f"--model-options: {model}.{LORAS} must map adapter names to folders")
    return {name: str((folder / Path(d).expanduser()).resolve()) for name, d in value.items()}


def split_loras(data: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """(the generation options, ``{model: {adapter name: folder}}``) of a parsed FILE."""
    options = {m: {k: v for k, v in o.items() if k != LORAS} for m, o in data.items()}
    return options, {m: o[LORAS] for m, o in data.items() if o.get(LORAS)}


def options_for(defaults: dict[str, Any], per_model: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """The options of the model ``key`` (its cache name): defaults, then the matching entry."""
    short = key.rsplit("/", 1)[-1]
    chosen = per_model.get(key) or per_model.get(short) or {}
    return {**defaults, **chosen}


def cache_options(opts: dict[str, Any]) -> CacheOptions:
    from mlxk.engine.kvcache import check

    return check(CacheOptions(**{k: opts[k] for k in CACHE_KEYS if opts.get(k) is not None}))
