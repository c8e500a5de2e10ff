"""The embed use case: resolve a model, check it is an encoder, turn texts into vector records.

Shared by ``mlxk embed`` and ``POST /v1/embeddings``. The engine (mlx) is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlxk.errors import ValidationError

if TYPE_CHECKING:
    from mlxk.engine.embeddings.encoder import EmbeddingModel

# Inputs per engine call when streaming records out (sorted by length inside each chunk).
STREAM_CHUNK = 1024


@dataclass
class EmbedItem:
    """One input text and the fields that pass through to its output record."""

    text: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedTarget:
    name: str
    path: Path


def resolve_target(ref: str) -> EmbedTarget:
    """Resolve a model reference (contract section 3) to a directory on disk."""
    from mlxk.cache.resolve import resolve

    resolved = resolve(ref)
    return EmbedTarget(resolved.name, Path(resolved.path))


def ensure_embedding_model(target: EmbedTarget) -> None:
    """Refuse a model that is not an encoder (as ``list``/``show`` classify it), before loading."""
    from mlxk.cache import runnable

    if not (target.path / "config.json").is_file():
        raise ValidationError(f"'{target.name}' has no config.json; not a model directory",
                              param="model")
    runnable.check_runnable(target.name, target.path, "embedding", runnable.CLI_EMBEDDING)


def load(ref: str) -> EmbeddingModel:
    """Resolve, check and load an embedding model (from the cache or a local directory)."""
    from mlxk.engine.embeddings.encoder import load_embedding_model

    target = resolve_target(ref)
    ensure_embedding_model(target)
    return load_embedding_model(target.path, target.name)


# inputs ----------------------------------------------------------------------
def parse_stdin_lines(lines: Iterable[str]) -> list[EmbedItem]:
    """One text per line, or JSONL with a ``text`` field (decided by the first non-empty line).

    In JSONL mode every other field of a line passes through to its output record.
    """
    items: list[EmbedItem] = []
    jsonl: bool | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if jsonl is None:
            jsonl = _as_record(line) is not None
        if not jsonl:
            items.append(EmbedItem(line))
            continue
        record = _as_record(line)
        if record is None:
            raise ValidationError(f"stdin line {number}: not a JSON object (JSONL input: one "
                                  "object with a \"text\" field per line)", line=number)
        text = record.pop("text", None)
        if not isinstance(text, str):
            raise ValidationError(f"stdin line {number}: JSON object without a string \"text\" "
                                  "field", line=number)
        items.append(EmbedItem(text, record))
    return items


def _as_record(line: str) -> dict[str, Any] | None:
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# outputs ---------------------------------------------------------------------
@dataclass
class EmbedStats:
    count: int = 0
    tokens: int = 0
    truncated: int = 0


def iter_records(em: EmbeddingModel, items: list[EmbedItem], batch_size: int, truncate: bool,
                 stats: EmbedStats | None = None) -> Iterator[dict[str, Any]]:
    """Output records in input order, computed chunk by chunk (so a pipe sees output early).

    Every text is tokenized (and length-checked) before the first vector is computed, so
    ``--no-truncate`` fails before any output.
    """
    if not items:
        raise ValidationError("no input text (give texts as arguments, or '-' to read stdin)")
    try:
        ids, truncated = em.tokenize([it.text for it in items], truncate=truncate)
    except ValidationError as exc:
        raise ValidationError(exc.message + " (without --no-truncate it is cut to fit)",
                              **exc.extra) from exc
    stats = stats if stats is not None else EmbedStats()
    for start in range(0, len(items), STREAM_CHUNK):
        stop = start + STREAM_CHUNK
        result = em.embed_ids(ids[start:stop], truncated[start:stop], batch_size)
        stats.count += len(result.token_counts)
        stats.tokens += result.total_tokens
        stats.truncated += sum(result.truncated)
        for item, vector in zip(items[start:stop], result.vectors, strict=False):
            yield {**item.extra, "text": item.text, "embedding": [float(x) for x in vector],
                   "model": em.name, "dimensions": em.dimensions}


def envelope_data(em: EmbeddingModel, records: list[dict[str, Any]], stats: EmbedStats) -> dict[str, Any]:
    return {
        "model": em.name,
        "dimensions": em.dimensions,
        "count": len(records),
        "embeddings": records,
        "usage": {"prompt_tokens": stats.tokens, "total_tokens": stats.tokens},
        "truncated_count": stats.truncated,
        "max_tokens": em.max_length,
        "pooling": em.spec.pooling,
        "normalized": em.spec.normalize,
    }
