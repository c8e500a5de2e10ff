"""Resolve a model reference and refuse, before any load, what the job at hand cannot run.

One rule for every front end (``run``, ``embed``, ``run/serve --hosts``, the server's text
and embedding routes): an embedding model is not a text model and a text model is not an
embedding model (as ``list``/``show`` classify them), and a model whose files the installed
runtime cannot read is refused with the reason ``show`` gives. The wording (and error type)
of each refusal belongs to the front end: a :class:`Refusal` carries it.

Pure file reading (no mlx import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlxk.cache.detect import ModelDescription, describe
from mlxk.cache.resolve import ResolvedModel, resolve, validate_name
from mlxk.errors import MlxkError, ModelNotFound, NotRuntimeCompatible, ValidationError

Job = Literal["text", "embedding"]


@dataclass(frozen=True)
class Refusal:
    """How one front end words the two refusals."""

    wrong_kind: Callable[[str, str], MlxkError]     # (model name, its model_type) -> error
    not_runnable: Callable[[str, str], MlxkError]   # (model name, reason) -> error


def _kind_word(model_type: str) -> str:
    return "chat" if model_type == "chat" else "text-generation"


CLI_TEXT = Refusal(
    wrong_kind=lambda name, _t: NotRuntimeCompatible(
        f"{name} is an embedding model; use 'mlxk embed {name}' instead"),
    not_runnable=lambda name, why: NotRuntimeCompatible(f"{name} cannot be run: {why}"),
)
CLI_EMBEDDING = Refusal(
    wrong_kind=lambda name, t: ValidationError(
        f"'{name}' is a {_kind_word(t)} model, not an embedding model; "
        f"use 'mlxk run' (or /v1/chat/completions) for it, and an embedding model "
        f"such as sentence-transformers/all-MiniLM-L6-v2 for embeddings",
        param="model", model_type=t),
    not_runnable=lambda name, why: NotRuntimeCompatible(f"'{name}' cannot run here: {why}"),
)
HTTP_TEXT = Refusal(
    wrong_kind=lambda name, _t: ValidationError(
        f"model '{name}' is an embedding model; use /v1/embeddings", param="model"),
    not_runnable=lambda name, why: NotRuntimeCompatible(f"model '{name}' cannot run here: {why}"),
)
HTTP_EMBEDDING = Refusal(
    wrong_kind=lambda name, t: ValidationError(
        f"model '{name}' is a {_kind_word(t)} model, not an embedding model; "
        f"use /v1/chat/completions for it, or an embedding model here", param="model"),
    not_runnable=lambda name, why: ValidationError(f"model '{name}' cannot run here: {why}",
                                                   param="model"),
)


def check_runnable(name: str, path: Path, job: Job, refusal: Refusal) -> ModelDescription:
    """The model in ``path`` can do ``job`` here, or the front end's refusal is raised."""
    desc = describe(Path(path))
    if (desc.model_type == "embedding") != (job == "embedding"):
        raise refusal.wrong_kind(name, desc.model_type)
    if not desc.runtime_compatible:
        raise refusal.not_runnable(name, desc.runtime_reason or "not runtime compatible")
    return desc


def resolve_runnable(ref: str, job: Job, refusal: Refusal) -> ResolvedModel:
    """Resolve ``ref`` (a name, ``name@hash`` or a path) and check it can do ``job``."""
    resolved = resolve(ref)
    check_runnable(resolved.name, Path(resolved.path), job, refusal)
    return resolved


def is_path_like(name: str) -> bool:
    """Names a client may never use: anything that could address the filesystem."""
    n = name.strip()
    return (n.startswith(("/", ".", "~", "\\")) or "\\" in n or ".." in n
            or (len(n) > 1 and n[1] == ":") or "\x00" in n)


def resolve_client_model(name: str, job: Job, refusal: Refusal) -> ResolvedModel:
    """A model name an HTTP client sent: cache only (never a path, never a download)."""
    if is_path_like(name):
        raise ValidationError(f"model '{name}' is not a model name (paths are not accepted)",
                              param="model")
    validate_name(name.rsplit("@", 1)[0])
    resolved = resolve(name)
    if not resolved.cached:
        raise ModelNotFound(f"The model '{name}' does not exist", param="model")
    check_runnable(resolved.name, Path(resolved.path), job, refusal)
    return resolved
