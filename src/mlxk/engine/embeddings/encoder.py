"""Text embeddings with the MLX embeddings library (``mlx_embeddings``).

The library builds the encoder and loads its weights; tokenization, truncation,
batching, pooling and normalization are done here, exactly as the model's own
sentence-transformers config says (see ``embed_config``), so vectors match what
sentence-transformers computes for the same model. Imported lazily (it imports mlx).
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk import config as mlxk_config
from mlxk.engine import blas
from mlxk.engine.embeddings import config as embed_config
from mlxk.engine.embeddings.config import EmbedSpec
from mlxk.errors import ExecutionError, MlxkError, NotRuntimeCompatible, ValidationError

DEFAULT_BATCH_SIZE = 32
# Families whose position table carries a padding offset of 2 (RoBERTa style).
_POSITION_OFFSET_FAMILIES = ("xlm_roberta", "roberta", "camembert")


@dataclass
class EmbeddingResult:
    """Vectors (float32 numpy rows, input order) and the real token count of each input."""

    vectors: Any
    token_counts: list[int]
    truncated: list[bool]

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass
class EmbeddingModel:
    path: Path
    name: str
    model: Any
    tokenizer: Any
    spec: EmbedSpec
    config: dict[str, Any]
    max_length: int
    dimensions: int
    load_seconds: float
    _dense: list[tuple[Any, Any, str]] = field(default_factory=list)
    _accepts_token_types: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tok_lock: threading.Lock = field(default_factory=threading.Lock)

    # tokenization ----------------------------------------------------------
    def tokenize(self, texts: list[str], truncate: bool = True) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text (with the model's special tokens), cut to ``max_length`` when allowed."""
        with self._tok_lock:  # HF fast tokenizers raise "Already borrowed" when shared across threads
            enc = self.tokenizer(texts, add_special_tokens=True, truncation=False, padding=False)
        ids: list[list[int]] = [list(x) for x in enc["input_ids"]]
        truncated = [len(x) > self.max_length for x in ids]
        if not any(truncated):
            return ids, truncated
        long = [i for i, t in enumerate(truncated) if t]
        if not truncate:
            i = long[0]
            raise ValidationError(
                f"input {i} has {len(ids[i])} tokens, more than the model's limit of "
                f"{self.max_length} tokens",
                param="input", index=i, tokens=len(ids[i]), max_tokens=self.max_length)
        with self._tok_lock:
            cut = self.tokenizer([texts[i] for i in long], add_special_tokens=True, truncation=True,
                                 max_length=self.max_length, padding=False)["input_ids"]
        for i, row in zip(long, cut, strict=False):
            ids[i] = list(row)
        return ids, truncated

    def check_token_ids(self, ids: list[list[int]], truncate: bool = True) -> tuple[list[list[int]], list[bool]]:
        """Pre-tokenized input (OpenAI token arrays): validate ids, cut or refuse overlong rows."""
        vocab = int(self.config.get("vocab_size") or 0)
        out, truncated = [], []
        for i, row in enumerate(ids):
            if vocab and any(t < 0 or t >= vocab for t in row):
                raise ValidationError(f"input {i} has token ids outside the vocabulary (0..{vocab - 1})",
                                      param="input")
            too_long = len(row) > self.max_length
            if too_long and not truncate:
                raise ValidationError(f"input {i} has {len(row)} tokens, more than the model's limit "
                                      f"of {self.max_length} tokens", param="input", index=i,
                                      tokens=len(row), max_tokens=self.max_length)
            out.append(list(row[: self.max_length]))
            truncated.append(too_long)
        return out, truncated

    # embedding -------------------------------------------------------------
    def embed(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE,
              truncate: bool = True) -> EmbeddingResult:
        ids, truncated = self.tokenize(list(texts), truncate=truncate)
        return self.embed_ids(ids, truncated, batch_size)

    def embed_ids(self, ids: list[list[int]], truncated: list[bool] | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> EmbeddingResult:
        import numpy as np

        if batch_size < 1:
            raise ValidationError("batch size must be at least 1", param="batch_size")
        vectors = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        # Longest first, so each batch pads little; results go back to input order.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            vectors[chunk] = self._forward([ids[i] for i in chunk])
        counts = [len(x) for x in ids]
        return EmbeddingResult(vectors, counts, list(truncated or [False] * len(ids)))

    def _forward(self, rows: list[list[int]]) -> Any:
        import mlx.core as mx
        import numpy as np

        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(1, max(len(r) for r in rows))
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        ids = np.full((len(rows), width), pad_id, dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for j, r in enumerate(rows):
            if not r:
                continue
            if left:
                ids[j, width - len(r):], mask[j, width - len(r):] = r, 1
            else:
                ids[j, :len(r)], mask[j, :len(r)] = r, 1
        kwargs: dict[str, Any] = {"attention_mask": mx.array(mask)}
        if self._accepts_token_types:
            kwargs["token_type_ids"] = mx.zeros(ids.shape, dtype=mx.int32)
        with self._lock:
            try:
                out = self.model(mx.array(ids), **kwargs)
                hidden = out.last_hidden_state.astype(mx.float32)
                vec = self._pool(hidden, mx.array(mask).astype(mx.float32))
                for weight, bias, act in self._dense:
                    vec = vec @ weight.T + (bias if bias is not None else 0)
                    if act == "tanh":
                        vec = mx.tanh(vec)
                if self.spec.normalize:
                    vec = vec / mx.maximum(mx.linalg.norm(vec, axis=-1, keepdims=True), 1e-12)
                mx.eval(vec)
            except MlxkError:
                raise
            except Exception as exc:
                raise ExecutionError(f"embedding failed: {type(exc).__name__}: {exc}") from exc
            return np.array(vec, dtype=np.float32)

    def _pool(self, hidden: Any, mask: Any) -> Any:
        import mlx.core as mx

        mode = self.spec.pooling
        m = mask[..., None]
        if mode == "cls":
            return hidden[:, 0]
        if mode == "max":
            return mx.max(mx.where(m > 0, hidden, mx.array(-1e9, dtype=hidden.dtype)), axis=1)
        if mode == "lasttoken":
            width = mask.shape[1]
            last = (width - 1) - mx.argmax(mask[:, ::-1], axis=1)
            return mx.take_along_axis(hidden, last[:, None, None].astype(mx.int32), axis=1)[:, 0]
        if mode == "weightedmean":
            w = m * mx.arange(1, mask.shape[1] + 1, dtype=mx.float32)[None, :, None]
            return mx.sum(hidden * w, axis=1) / mx.maximum(mx.sum(w, axis=1), 1e-9)
        summed = mx.sum(hidden * m, axis=1)
        count = mx.maximum(mx.sum(m, axis=1), 1e-9)
        if mode == "mean_sqrt_len":
            return summed / mx.sqrt(count)
        return summed / count


def _max_length(spec: EmbedSpec, config: dict[str, Any], tokenizer: Any) -> int:
    limits = []
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        family = str(config.get("model_type", "")).replace("-", "_")
        limits.append(positions - 2 if family in _POSITION_OFFSET_FAMILIES else positions)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if spec.max_seq_length:
        limits.append(int(spec.max_seq_length))
    elif isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    return min(limits) if limits else 512


def _load_dense(path: Path, spec: EmbedSpec) -> list[tuple[Any, Any, str]]:
    import mlx.core as mx

    layers = []
    for d in spec.dense:
        files = sorted((path / d.path).glob("*.safetensors"))
        if not files:
            raise NotRuntimeCompatible(f"Dense module '{d.path}' has no safetensors weights")
        w = mx.load(str(files[0]))
        weight = w.get("linear.weight")
        if weight is None:
            raise NotRuntimeCompatible(f"Dense module '{d.path}': no 'linear.weight' tensor")
        bias = w.get("linear.bias") if d.bias else None
        layers.append((weight.astype(mx.float32),
                       bias.astype(mx.float32) if bias is not None else None, d.activation))
    return layers


@contextlib.contextmanager
def _top_level_view(path: Path) -> Iterator[Path]:
    """``path``, or a temporary folder of links to its top-level files when subfolders hold weights.

    mlx_embeddings' loader globs ``**/model*.safetensors`` recursively, so a sentence-transformers
    ``2_Dense/model.safetensors`` would be loaded into the encoder (and rejected). The Dense
    weights are loaded separately (``_load_dense``).
    """
    nested = [p for p in path.glob("*/model*.safetensors")]
    if not nested:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mlxk-encoder-") as tmp:
        for f in path.iterdir():
            if f.is_file():
                (Path(tmp) / f.name).symlink_to(f.resolve())
        yield Path(tmp)


def load_embedding_model(path: Path, name: str | None = None) -> EmbeddingModel:
    """Load an encoder from a local directory (a cache snapshot or a model folder). Never downloads."""
    path = Path(path)
    config = embed_config._read_json(path / "config.json")
    if not isinstance(config, dict):
        raise NotRuntimeCompatible(f"{path}: config.json missing or invalid")
    reason = embed_config.runtime_check(path, config)
    if reason:
        raise NotRuntimeCompatible(reason)
    spec = embed_config.read_spec(path, config)
    blas.use_fast_blas()  # before the first mlx import in this process
    started = time.perf_counter()
    mlxk_config.quiet_transformers()
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        from mlx_embeddings.utils import load_model
        from transformers import AutoTokenizer

        with _top_level_view(path) as model_dir:
            model = load_model(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except MlxkError:
        raise
    except (ValueError, KeyError, TypeError, FileNotFoundError, OSError) as exc:
        raise NotRuntimeCompatible(f"cannot load embedding model {name or path}: {exc}") from exc
    except Exception as exc:
        raise ExecutionError(f"loading {name or path} failed: {type(exc).__name__}: {exc}") from exc
    dense = _load_dense(path, spec)
    max_len = _max_length(spec, config, tokenizer)
    dims = int(spec.dense[-1].out_features if spec.dense else
               (spec.dimension or config.get("hidden_size") or 0))
    try:
        accepts = "token_type_ids" in inspect.signature(model.__call__).parameters
    except (TypeError, ValueError):
        accepts = False
    return EmbeddingModel(path=path, name=name or str(path), model=model, tokenizer=tokenizer,
                          spec=spec, config=config, max_length=max_len, dimensions=dims,
                          load_seconds=time.perf_counter() - started, _dense=dense,
                          _accepts_token_types=accepts)
