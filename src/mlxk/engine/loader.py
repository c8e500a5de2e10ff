"""Load a model directory with mlx-lm into a ``LoadedModel`` (model + tokenizer + facts).

Foreign errors are translated here: an architecture mlx-lm cannot build is
``NotRuntimeCompatible``; missing or corrupt files are ``ExecutionError``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlxk.engine import cpu_kernels
from mlxk.engine.text.reasoning import HARMONY_MARKERS
from mlxk.engine.types import LoadedModel as LoadedModel
from mlxk.errors import ExecutionError, MlxkError, NotRuntimeCompatible

# Tokens that end an assistant turn in common chat formats (besides the eos ids).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|return|>",
                      "<|endoftext|>", "<end_of_turn>", "<|end_of_text|>", "</s>", "<|call|>")
# In harmony (GPT-OSS) ``<|end|>`` only ends one message (e.g. the analysis channel).
HARMONY_NOT_END = ("<|end|>",)
DEFAULT_CONTEXT = 4096
# Special tokens that carry meaning in the output (tool-call markers the tool parser reads).
VISIBLE_SPECIALS = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "[ARGS]",
                    "[CALL_ID]")


def _context_length(config: dict[str, Any], tokenizer: Any) -> int:
    sources = [config, config.get("text_config") or {}]
    for cfg in sources:
        for key in ("max_position_embeddings", "max_seq_len", "n_positions", "seq_length",
                    "max_sequence_length", "n_ctx", "model_max_length"):
            value = cfg.get(key)
            if isinstance(value, int) and value > 0:
                return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10**7:
        return value
    return DEFAULT_CONTEXT


def _vocab(tokenizer: Any) -> dict[str, int]:
    try:
        return dict(tokenizer.get_vocab())
    except Exception:
        return {}


def reasoning_format_of(vocab: dict[str, int], template: str | None) -> str | None:
    if "<|channel|>" in vocab and "<|message|>" in vocab and "<|return|>" in vocab:
        return "harmony"
    if "<think>" in vocab and "</think>" in vocab:
        return "think"
    if template and "<think>" in template and "</think>" in template:
        return "think"
    return None


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's special tokens (control tokens, never shown as text)."""
    ids = set(getattr(tokenizer, "all_special_ids", None) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for idx, tok in decoder.items():
        if getattr(tok, "special", False):
            ids.add(int(idx))
    return ids


def describe_tokens(tokenizer: Any, config: dict[str, Any]) -> dict[str, Any]:
    """End-of-turn ids, hidden special ids, harmony marker ids and the reasoning format."""
    vocab = _vocab(tokenizer)
    template = getattr(tokenizer, "chat_template", None)
    fmt = reasoning_format_of(vocab, template if isinstance(template, str) else None)
    end = {int(t) for t in (getattr(tokenizer, "eos_token_ids", None) or [])}
    eos_cfg = config.get("eos_token_id")
    if isinstance(eos_cfg, int):
        end.add(eos_cfg)
    elif isinstance(eos_cfg, list):
        end.update(int(t) for t in eos_cfg)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        end.add(int(tokenizer.eos_token_id))
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab and not (fmt == "harmony" and tok in HARMONY_NOT_END):
            end.add(vocab[tok])
    if fmt == "harmony":
        end.discard(vocab.get("<|end|>", -1))
    # Harmony's markup tokens go to the decoder as markers; the ones that end the turn stay eos.
    markers = ({vocab[t] for t in HARMONY_MARKERS if t in vocab} - end) if fmt == "harmony" else set()
    visible = set(VISIBLE_SPECIALS)
    for attr in ("tool_call_start", "tool_call_end"):   # mlx-lm TokenizerWrapper's public markers
        marker = getattr(tokenizer, attr, None)
        if isinstance(marker, str):
            visible.add(marker)
    hidden = special_ids(tokenizer) - end - markers - {vocab[t] for t in visible if t in vocab}
    if fmt == "think":
        hidden -= {vocab[t] for t in ("<think>", "</think>") if t in vocab}
    return {"eos": end, "hidden": hidden, "markers": markers, "format": fmt}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExecutionError(f"config.json missing in {path}") from exc
    except (OSError, ValueError) as exc:
        raise ExecutionError(f"cannot read config.json in {path}: {exc}") from exc


def load_error(exc: Exception, raw_config: dict[str, Any], name: str, engine: str = "mlx-lm"
               ) -> MlxkError:
    """A loader's exception as an mlxk error: an architecture the engine cannot build is
    ``NotRuntimeCompatible``; corrupt safetensors, missing files, tokenizer errors are
    ``ExecutionError``."""
    if isinstance(exc, MlxkError):
        return exc
    text = str(exc)
    if isinstance(exc, ValueError):
        if "not supported" in text.lower() or "model type" in text.lower():
            arch = raw_config.get("model_type", "?")
            return NotRuntimeCompatible(f"Unsupported architecture '{arch}' ({engine}): {text}")
        return ExecutionError(f"cannot load model {name}: {text}")
    return ExecutionError(f"cannot load model {name}: {type(exc).__name__}: {text}")


def load_model(path: Path, name: str | None = None, *, model: Any = None,
               config: dict[str, Any] | None = None, lazy: bool = False,
               adapter_path: str | Path | None = None) -> LoadedModel:
    """Load ``path`` (a model directory). ``model``/``config`` skip the weight loading
    (the distributed ranks hand in an already sharded model); ``adapter_path``: a LoRA
    adapter applied before the CPU kernels take over the quantized layers."""
    from mlx_lm.utils import load_model as mlx_load_model
    from mlx_lm.utils import load_tokenizer

    path = Path(path)
    started = time.perf_counter()
    raw_config = _read_config(path)
    try:
        if model is None:
            model, config = mlx_load_model(path, lazy=lazy)
        config = dict(config or raw_config)
        tokenizer = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    except Exception as exc:
        raise load_error(exc, raw_config, name or str(path)) from exc
    if adapter_path is not None:
        from mlxk.engine.adapters import apply

        model = apply(model, adapter_path)
    cpu_kernels.accelerate(model)   # Linux CPU: quantized layers on mlxk's kernel (never raises)
    facts = describe_tokens(tokenizer, config)
    tokenizer.eos_token_ids = facts["eos"]   # mlx-lm's own loops stop at every end-of-turn id
    return LoadedModel(
        model=model, tokenizer=tokenizer, config=config, name=name or str(path), path=path,
        eos_token_ids=facts["eos"], context_length=_context_length(config, tokenizer),
        load_seconds=time.perf_counter() - started, reasoning_format=facts["format"],
        has_chat_template=bool(getattr(tokenizer, "has_chat_template", False)),
        hidden_token_ids=facts["hidden"], marker_token_ids=facts["markers"],
    )
