"""`run --hosts` / `serve --hosts` on the command line: flags in, plan and answers out.

The checks, the shard plan and the ranks are ``operations.distributed``'s; this module
only turns flags into its calls and renders what comes back, exactly as the local
`run` / `serve` render it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlxk.output.console import Output
from mlxk.output.human import size_str

if TYPE_CHECKING:
    from mlxk.server.settings import ServerSettings


def render_plan(data: dict[str, Any]) -> str:
    plan = data["plan"]
    lines = [f"Model     {data['model']}",
             f"Parallel  {plan['mode']} over {plan['world_size']} ranks ({data['backend']} backend); "
             f"supported: {', '.join(plan['supported_modes'])}",
             f"Layers    {plan['num_layers']}   attention heads {plan['attention_heads']}   "
             f"kv heads {plan['kv_heads']}   weights {size_str(plan['total_bytes'])}"]
    hosts = {h["rank"]: h["ssh"] for h in data["hosts"]}
    for r in plan["ranks"]:
        start, end = r["layers"]
        lines.append(f"  rank {r['rank']} @ {hosts.get(r['rank'], '?')}: layers {start}-{end - 1} "
                     f"({end - start}), heads {r['attention_heads']}, kv heads {r['kv_heads']}, "
                     f"{size_str(r['bytes'])}")
    return "\n".join(lines)


def dry_run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.cli.options import host_options
    from mlxk.operations import distributed as dist

    p = dist.prepare(args.model, host_options(args), check_hosts=False)
    out.result(dist.plan_data(p), render_plan)
    return 0


def _memory(ready: dict[str, Any]) -> str:
    return ", ".join(f"rank {i}: {size_str(kib * 1024)}" for i, kib in enumerate(ready.get("memory_kib", [])))


def serve(args: argparse.Namespace, out: Output, settings: ServerSettings) -> int:
    """`serve --hosts`: rank 0 runs the HTTP server; this process supervises the ranks."""
    from mlxk.cli.options import host_options
    from mlxk.operations import distributed as dist

    if args.dry_run:
        dist.check_serve(settings, out.warn)
        return dry_run(args, out)

    def on_event(p: dist.Prepared, ev: dict[str, Any]) -> None:
        if ev.get("ev") == "ready":
            out.info(f"All ranks loaded in {ev.get('load_seconds', 0):.1f}s (memory: {_memory(ev)})")
        elif ev.get("ev") == "listening":
            from mlxk.server.ui import page_url

            ui = page_url(ev["host"], ev["port"]) if settings.ui else None
            data = {"host": ev["host"], "port": ev["port"], "model": ev.get("model"), "pid": ev.get("pid"),
                    "ui": ui, "ranks": len(p.hosts.hosts), "parallel": p.plan.mode}
            out.result(data, _listening_text)

    def on_start(p: dist.Prepared) -> None:
        out.info(f"Starting {len(p.hosts.hosts)} ranks ({p.plan.mode} parallel, {p.hosts.backend} backend)...")

    return dist.serve(settings, args.model, host_options(args), on_event, out.warn, on_start)


def _listening_text(d: dict[str, Any]) -> str:
    page = f"; chat page {d['ui']}" if d.get("ui") else ""
    return (f"mlxk serve: listening on http://{d['host']}:{d['port']}, model {d['model']}{page} "
            f"({d['parallel']} parallel over {d['ranks']} ranks; Ctrl-C to stop)")


def run_cli(args: argparse.Namespace, out: Output, text: str | None = None) -> int:
    """`run --hosts`: one prompt through the ranks, printed exactly as a single process prints it
    (request and ``--json`` data are built by the same ``operations.run`` functions)."""
    from mlxk.cli.chat_ui import print_answer
    from mlxk.cli.options import host_options, run_options
    from mlxk.operations import distributed as dist
    from mlxk.operations import run as ops

    if args.dry_run:
        return dry_run(args, out)
    options = run_options(args)
    if text is None and not out.stdin.isatty():
        text = ops.combine_stdin([], out.stdin.read())  # `echo hi | mlxk run M --hosts ...`
    text = dist.check_prompt(text)
    p = dist.prepare(args.model, host_options(args))
    out.info(f"Starting {len(p.hosts.hosts)} ranks ({p.plan.mode} parallel, {p.hosts.backend} backend)...")
    session = dist.start_session(p)
    ready = session.ready or {}
    if args.verbose:
        out.info(f"Loaded in {ready.get('load_seconds', 0):.2f}s; memory {_memory(ready)}")
    turn = ops.Turn()
    name = ready.get("name") or args.model
    try:
        chunks = dist.stream(session, text, options, turn)
        if out.json_mode:
            for _ in chunks:
                pass
            out.result(ops.single_result(name, text, turn, options))
        else:
            print_answer(chunks, turn, out, name, hide_reasoning=args.hide_reasoning,
                         no_stream=args.no_stream, verbose=args.verbose)
    finally:
        session.close()
    return 0
