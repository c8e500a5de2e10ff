"""How the pool finds and loads a model by default: a client's name resolves against the cache only
(never a path, never a download), the ``--model`` given at start may be a path; loaders, the
scheduler class and a load failure's error. The pool takes each as a parameter so tests and the
distributed leader can put their own in. mlx is imported only when a loader runs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from mlxk.cache import runnable
from mlxk.cache.adapters import WEIGHTS
from mlxk.cache.resolve import ResolvedModel
from mlxk.cache.runnable import Job
from mlxk.engine.types import GenerationRequest, LoadedModel
from mlxk.errors import MlxkError, ModelNotFound, NotRuntimeCompatible
from mlxk.server.pool_entry import Target

if TYPE_CHECKING:
    from mlxk.engine.batch import BatchScheduler
    from mlxk.engine.embeddings.encoder import EmbeddingModel
    from mlxk.engine.generate import Prepared

WEIGHT_SUFFIXES = (".safetensors", ".npz", ".gguf", ".bin")


def weights_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for p in path.iterdir():
            if p.name.endswith(WEIGHT_SUFFIXES):
                with contextlib.suppress(OSError):
                    total += p.stat().st_size
    return total


def adapter_size(folder: str) -> int:
    with contextlib.suppress(OSError):
        return (Path(folder) / WEIGHTS).stat().st_size
    return 0


def _target(resolved: ResolvedModel, job: Job) -> Target:
    key = resolved.name
    if resolved.revision_explicit and resolved.commit:
        key = f"{resolved.name}@{resolved.commit[:12]}"
    return Target(key, Path(resolved.path), job)


def default_resolver(name: str) -> Target:
    """Resolve a client's model name in the cache; refuse paths, embeddings, unrunnable models."""
    return _target(runnable.resolve_client_model(name, "text", runnable.HTTP_TEXT), "text")


def embedding_resolver(name: str) -> Target:
    """Resolve a client's model name for ``/v1/embeddings``; only cached embedding models qualify."""
    return _target(runnable.resolve_client_model(name, "embedding", runnable.HTTP_EMBEDDING),
                   "embedding")


def resolve_start_model(ref: str) -> Target:
    """``--model`` may be a path (operator's choice) or any cache reference."""
    from mlxk.cache.detect import describe
    from mlxk.cache.loadable import refuse_unhealthy
    from mlxk.cache.resolve import resolve

    resolved = resolve(ref)
    refuse_unhealthy(resolved)   # a broken --model stops the start with health's reason
    key = resolved.name if resolved.cached else Path(resolved.path).name
    job: Job = "embedding" if describe(Path(resolved.path)).model_type == "embedding" else "text"
    return Target(key, Path(resolved.path), job)


def default_loader(path: Path, name: str, adapter_path: str | None = None) -> LoadedModel:
    from mlxk.engine.choose import load

    return load(path, name=name, adapter_path=adapter_path)


def default_embedding_loader(path: Path, name: str) -> EmbeddingModel:
    from mlxk.engine.embeddings.encoder import load_embedding_model

    return load_embedding_model(path, name)


def default_prepare(lm: LoadedModel, request: GenerationRequest) -> Prepared:
    from mlxk.engine.choose import prepare

    return prepare(lm, request)


def scheduler_class(path: Path) -> type[BatchScheduler]:
    """Vision models (with the extra installed) run on the vision scheduler, the rest batch."""
    from mlxk.engine.choose import uses_vision_engine

    if uses_vision_engine(path):
        from mlxk.engine.vision.scheduler import VisionScheduler

        return VisionScheduler
    from mlxk.engine.batch import BatchScheduler

    return BatchScheduler


def load_error(key: str, exc: BaseException) -> MlxkError:
    """A load failure as the error every waiter on that model gets."""
    if isinstance(exc, MlxkError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ModelNotFound(f"model {key}: {exc}")
    return NotRuntimeCompatible(f"model {key} failed to load: {type(exc).__name__}: {exc}")
