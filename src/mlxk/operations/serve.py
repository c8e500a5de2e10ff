"""``serve``: check the settings, then run the server under the supervisor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlxk.errors import ValidationError
from mlxk.server.settings import ServerSettings


def check_settings(settings: ServerSettings) -> list[str]:
    """Validate before anything starts; returns warnings for the operator."""
    if not 0 <= settings.port <= 65535:
        raise ValidationError(f"port {settings.port} is out of range")
    if settings.max_loaded < 1:
        raise ValidationError("--max-loaded must be at least 1")
    if settings.max_batch < 1:
        raise ValidationError("--max-batch must be at least 1")
    if settings.max_queue < 0:
        raise ValidationError("--max-queue must be 0 or more")
    if settings.prefill_chunk < 1:
        raise ValidationError("--prefill-chunk must be at least 1")
    if settings.prompt_cache_disk_bytes < 0:
        raise ValidationError("--prompt-cache-disk-bytes must be 0 or more")
    if settings.max_body_bytes < 1024:
        raise ValidationError("--max-body-bytes must be at least 1024")
    if settings.memory_budget_bytes is not None and settings.memory_budget_bytes <= 0:
        raise ValidationError("--memory-budget must be a positive number of GB")
    if settings.api_key is not None and not settings.api_key.strip():
        raise ValidationError("the API key is empty or blank; give a real key or none")
    if settings.keep_alive < 0 and settings.keep_alive != -1:
        raise ValidationError("--keep-alive takes seconds, 0 (unload after each request) or -1 (never)")
    check_generation(settings)
    warnings = []
    if not settings.is_loopback:
        auth = "with an API key" if settings.api_key else "WITHOUT an API key"
        warnings.append(f"binding {settings.host} exposes the server beyond this machine ({auth})")
    return warnings


def check_generation(settings: ServerSettings) -> None:
    """Every model's generation options must be valid and runnable in the batch."""
    from mlxk.server.model_options import cache_options

    named = {"(command line)": settings.generation,
             **{m: {**settings.generation, **o} for m, o in settings.model_options.items()}}
    for model, opts in named.items():
        try:
            cache_options(opts)
            if opts.get("adapter_path"):
                from mlxk.engine.adapters import read_config

                read_config(opts["adapter_path"])
        except ValidationError as exc:
            raise ValidationError(f"{exc} [{model}]") from exc


def resolve_start_model(settings: ServerSettings) -> str | None:
    """Fail fast (before any process starts) when ``--model`` names nothing; cache-only, no mlx."""
    if not settings.model:
        return None
    from mlxk.cache.resolve import resolve

    return resolve(settings.model).name


def serve(settings: ServerSettings, on_ready: Callable[[dict[str, Any]], None],
          warn: Callable[[str], None]) -> int:
    from mlxk.server.supervisor import Supervisor

    for w in check_settings(settings):
        warn(w)
    resolve_start_model(settings)
    return Supervisor(settings, on_ready, warn).run()
