"""`mlxk serve`: an OpenAI-compatible HTTP server for the models in the cache."""

from __future__ import annotations

import argparse
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
    from mlxk.server import settings as st

    g = p.add_argument_group("network")
    g.add_argument("--host", default=config.DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=config.DEFAULT_PORT, help="port (default 8000)")
    m = p.add_argument_group("models")
    m.add_argument("--model", default=None, help="model to preload (name or ./path); kept loaded")
    m.add_argument("--max-loaded", type=int, default=st.DEFAULT_MAX_LOADED,
                   help=f"models kept loaded at once, LRU (default {st.DEFAULT_MAX_LOADED})")
    m.add_argument("--keep-alive", type=float, default=config.DEFAULT_KEEP_ALIVE_SECONDS,
                   help="seconds an idle model stays loaded; 0 = unload after each request, -1 = never")
    m.add_argument("--memory-budget", type=float, default=None, metavar="GB",
                   help="memory for loaded models in GB (default 75%% of RAM)")
    q = p.add_argument_group("load")
    q.add_argument("--max-batch", type=int, default=st.DEFAULT_MAX_BATCH,
                   help=f"sequences decoded together per model (default {st.DEFAULT_MAX_BATCH})")
    q.add_argument("--max-queue", type=int, default=st.DEFAULT_MAX_QUEUE,
                   help=f"requests waiting for a slot before 503 (default {st.DEFAULT_MAX_QUEUE})")
    q.add_argument("--max-body-bytes", type=int, default=st.DEFAULT_MAX_BODY_BYTES,
                   help="largest request body accepted (413 beyond)")
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
                   help="seconds in-flight requests get on shutdown before a kill")
    o.add_argument("--log-json", action="store_true", help="structured JSON log lines on stderr")
    o.add_argument("--no-ui", dest="ui", action="store_false",
                   help="do not serve the browser chat page at / and /chat")
    from mlxk.cli.options import add_distributed_flags

    add_distributed_flags(p)


def build_settings(args: argparse.Namespace) -> Any:
    from mlxk.server.settings import ServerSettings

    budget = int(args.memory_budget * 1024**3) if args.memory_budget else None
    return ServerSettings(
        host=args.host, port=args.port, model=args.model, max_loaded=args.max_loaded,
        keep_alive=args.keep_alive, memory_budget_bytes=budget,
        api_key=args.api_key or config.api_key(), cors_origins=args.cors_origins or [],
        max_queue=args.max_queue, max_batch=args.max_batch, max_body_bytes=args.max_body_bytes,
        stop_timeout=args.stop_timeout, log_json=args.log_json, restart=args.restart, ui=args.ui,
        allow_image_urls=args.allow_image_urls,
    )


def _human(d: dict) -> str:
    model = f", model {d['model']}" if d.get("model") else ""
    page = f"; chat page {d['ui']}" if d.get("ui") else ""
    return f"mlxk serve: listening on http://{d['host']}:{d['port']}{model}{page} (Ctrl-C to stop)"


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.serve import serve

    settings = build_settings(args)
    from mlxk.cli.options import distributed_requested

    if distributed_requested(args):
        from mlxk.cli import distributed

        return distributed.serve(args, out, settings)

    def on_ready(msg: dict) -> None:
        from mlxk.server.ui import page_url

        url = page_url(msg["host"], msg["port"]) if settings.ui else None
        out.result({"host": msg["host"], "port": msg["port"], "model": msg.get("model"),
                    "pid": msg.get("pid"), "ui": url}, _human)

    return serve(settings, on_ready, out.warn)
