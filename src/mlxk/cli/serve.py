"""`mlxk serve`: an OpenAI-compatible HTTP server for the models in the cache."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mlxk import config
from mlxk.output.console import Output

NAME = "serve"
ALIASES = ("server",)
HELP = "run an OpenAI-compatible API server"
DESCRIPTION = ("Serve the cached models over an OpenAI-compatible HTTP API (chat, completions,\n"
               "models, health, metrics), with continuous batching. Models load on first request.")
EXAMPLE = "Example: mlxk serve --model mlx-community/SmolLM2-135M-Instruct --port 8000"


def _origins(value: str) -> list[str]:
    return [o.strip() for o in value.split(",") if o.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mlxk.cli.options import add_keep_alive_flag
    from mlxk.server import settings as st

    g = p.add_argument_group("network")
    g.add_argument("--host", default=None,
                   help=f"bind address (default: $MLXK_HOST, else {config.DEFAULT_HOST})")
    g.add_argument("--port", type=int, default=None,
                   help=f"port (default: $MLXK_PORT, else {config.DEFAULT_PORT})")
    m = p.add_argument_group("models")
    m.add_argument("--model", default=None, help="model to preload (name or ./path); kept loaded")
    m.add_argument("--max-loaded", type=int, default=st.DEFAULT_MAX_LOADED,
                   help=f"models kept loaded at once, LRU (default {st.DEFAULT_MAX_LOADED})")
    add_keep_alive_flag(m, config.DEFAULT_KEEP_ALIVE_SECONDS,
                        "how long an idle model stays loaded: seconds or 30s/5m/1h (default 5m); "
                        "0 = unload after each request, -1 = never")
    m.add_argument("--memory-budget", type=float, default=None, metavar="GB",
                   help="memory for loaded models in GB (default 75%% of RAM)")
    q = p.add_argument_group("load")
    q.add_argument("--max-batch", type=int, default=st.DEFAULT_MAX_BATCH,
                   help=f"sequences decoded together per model (default {st.DEFAULT_MAX_BATCH})")
    q.add_argument("--max-queue", type=int, default=st.DEFAULT_MAX_QUEUE,
                   help=f"requests waiting for a slot before 503 (default {st.DEFAULT_MAX_QUEUE})")
    q.add_argument("--max-body-bytes", type=int, default=st.DEFAULT_MAX_BODY_BYTES,
                   help=f"largest request body accepted, 413 beyond (default {st.DEFAULT_MAX_BODY_BYTES})")
    m.add_argument("--model-options", default=None, metavar="FILE",
                   help="per-model options (JSON or TOML: model -> {max_kv_size, kv_bits, ...}); "
                        "they override the flags for that model")
    from mlxk.cli.options import add_cache_flags

    add_cache_flags(p)
    adapters = next(g for g in p._action_groups if g.title == "adapters")
    adapters.add_argument("--lora", action="append", default=[], metavar="[BASE+][NAME=]DIR",
                   help="serve a LoRA adapter as model BASE+NAME next to the plain base (repeatable; "
                        "NAME: the folder's name, BASE: --model, else the base the adapter names)")
    q.add_argument("--prefill-chunk", type=int, default=st.DEFAULT_PREFILL_CHUNK, metavar="N",
                   help="prompt tokens prefilled between two decode steps of the running requests "
                        f"(default {st.DEFAULT_PREFILL_CHUNK}; larger: faster long prompts, longer stalls)")
    q.add_argument("--prompt-lookup", type=int, default=None, metavar="N",
                   help="speculative decoding in the batch: each request drafts up to N tokens from "
                        "its own prompt and answer, verified in one pass (same output; pays where "
                        "answers repeat their input)")
    q.add_argument("--draft-model", default=None, metavar="NAME",
                   help="speculative decoding in the batch with a small model of the same tokenizer "
                        "(per-sequence drafts; use with --model); not with --prompt-lookup")
    q.add_argument("--num-draft-tokens", type=int, default=3, metavar="K",
                   help="tokens the --draft-model proposes per step (default 3)")
    q.add_argument("--prompt-cache-dir", default=None, metavar="DIR",
                   help="keep long prompt prefixes on disk here, found again after a restart")
    q.add_argument("--prompt-cache-disk-bytes", type=float, default=None, metavar="GB",
                   help=f"disk used by --prompt-cache-dir in GB, least recently used evicted "
                        f"(default {st.DEFAULT_PROMPT_CACHE_DISK_BYTES // 1024**3})")
    s = p.add_argument_group("security")
    s.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (or MLXK_API_KEY)")
    s.add_argument("--cors-origins", type=_origins, default=None, metavar="LIST",
                   help="comma-separated origins allowed by CORS (default: CORS off)")
    s.add_argument("--allow-image-urls", action="store_true",
                   help="let clients send images as http(s) URLs the server fetches (default: "
                        "data URIs / base64 only; fetching for clients is an SSRF risk)")
    o = p.add_argument_group("process")
    o.add_argument("--restart", action="store_true", help="restart the server if it crashes")
    o.add_argument("--stop-timeout", type=float, default=st.DEFAULT_STOP_TIMEOUT,
                   help="seconds in-flight requests get on shutdown before a kill "
                        f"(default {st.DEFAULT_STOP_TIMEOUT:g})")
    o.add_argument("--log-json", action="store_true", help="structured JSON log lines on stderr")
    o.add_argument("--no-ui", dest="ui", action="store_false",
                   help="do not serve the browser chat page at / and /chat")
    from mlxk.cli.options import add_distributed_flags

    add_distributed_flags(p)


def build_settings(args: argparse.Namespace) -> Any:
    from mlxk.errors import ValidationError
    from mlxk.server import settings as st
    from mlxk.server.settings import ServerSettings

    if args.memory_budget is not None and args.memory_budget <= 0:
        raise ValidationError(f"--memory-budget must be a positive number of GB (got {args.memory_budget:g})")
    if args.api_key is not None and not args.api_key.strip():
        raise ValidationError("--api-key is empty: give a key (an unset shell variable?), or leave the flag out "
                         "to run without authentication")
    budget = int(args.memory_budget * 1024**3) if args.memory_budget else None
    disk = (int(args.prompt_cache_disk_bytes * 1024**3) if args.prompt_cache_disk_bytes is not None
            else st.DEFAULT_PROMPT_CACHE_DISK_BYTES)
    from mlxk.server.model_options import read_file

    generation = {k: getattr(args, k) for k in ("max_kv_size", "kv_bits", "kv_group_size",
                                                "quantized_kv_start")}
    generation.update(_speculation(args))
    if args.adapter_path:
        from pathlib import Path

        generation["adapter_path"] = str(Path(args.adapter_path).expanduser().resolve())
    from mlxk.server import loras
    from mlxk.server.model_options import split_loras

    model_options, per_model_loras = split_loras(read_file(args.model_options) if args.model_options else {})
    if args.adapter_path and (args.lora or per_model_loras):
        raise ValidationError("--adapter-path puts one adapter on every model; --lora serves adapters "
                              "next to the plain base: use one of them")
    return ServerSettings(
        host=args.host or config.server_host(), port=_port(args.port), model=args.model,
        max_loaded=args.max_loaded,
        keep_alive=args.keep_alive, memory_budget_bytes=budget,
        api_key=args.api_key or config.api_key(), cors_origins=args.cors_origins or [],
        max_queue=args.max_queue, max_batch=args.max_batch, max_body_bytes=args.max_body_bytes,
        prefill_chunk=args.prefill_chunk, prompt_cache_dir=os.path.abspath(args.prompt_cache_dir) if args.prompt_cache_dir else None,
        prompt_cache_disk_bytes=disk,
        stop_timeout=args.stop_timeout, log_json=args.log_json, restart=args.restart, ui=args.ui,
        generation=generation,
        model_options=model_options,
        adapters=[a.to_dict() for a in loras.collect(args.lora, args.model, per_model_loras)],
        allow_image_urls=args.allow_image_urls,
    )


def _speculation(args: argparse.Namespace) -> dict[str, Any]:
    """``--prompt-lookup`` / ``--draft-model`` as generation options (the draft resolved now,
    so a wrong name stops the server before it starts)."""
    from mlxk.errors import UsageError, ValidationError
    from mlxk.server.model_options import check_prompt_lookup

    if args.draft_model and args.prompt_lookup is not None:
        raise UsageError("--draft-model and --prompt-lookup are two kinds of draft: choose one")
    if args.prompt_lookup is not None:
        return {"prompt_lookup": check_prompt_lookup(args.prompt_lookup)}
    if not args.draft_model:
        return {}
    if not 1 <= args.num_draft_tokens <= 16:
        raise ValidationError("--num-draft-tokens must be between 1 and 16")
    from mlxk.operations.run import resolve_runnable

    draft = resolve_runnable(args.draft_model)
    return {"draft_model": str(draft.path), "draft_name": draft.display,
            "num_draft_tokens": args.num_draft_tokens}


def _port(flag: int | None) -> int:
    if flag is not None:
        return flag
    value = config.server_port()
    if value is None:
        return config.DEFAULT_PORT
    try:
        return int(value)
    except ValueError:
        from mlxk.errors import UsageError

        raise UsageError(f"MLXK_PORT must be a port number (got {value!r})") from None


def _human(d: dict) -> str:
    model = f", model {d['model']}" if d.get("model") else ""
    page = f"; chat page {d['ui']}" if d.get("ui") else ""
    return f"mlxk serve: listening on http://{d['host']}:{d['port']}{model}{page} (Ctrl-C to stop)"


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.cli.options import distributed_requested, require_hosts_for_distributed_flags
    from mlxk.operations.serve import serve

    require_hosts_for_distributed_flags(args)
    settings = build_settings(args)

    if distributed_requested(args):
        if (args.max_kv_size or args.kv_bits or args.model_options or args.adapter_path or args.lora
                or args.prompt_lookup or args.draft_model):
            from mlxk.errors import UsageError

            raise UsageError("--max-kv-size, --kv-bits, --adapter-path, --lora, --prompt-lookup, --draft-model "
                             "and --model-options do not work with --hosts/--hostfile yet")

        from mlxk.cli import distributed

        return distributed.serve(args, out, settings)

    def on_ready(msg: dict) -> None:
        from mlxk.server.ui import page_url

        url = page_url(msg["host"], msg["port"]) if settings.ui else None
        out.result({"host": msg["host"], "port": msg["port"], "model": msg.get("model"),
                    "pid": msg.get("pid"), "ui": url}, _human)

    return serve(settings, on_ready, out.warn)
