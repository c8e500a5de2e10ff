"""`run --hosts` / `serve --hosts`: the checks, the shard plan, then the ranks.

Everything that can be wrong is checked here, in this order, before any rank
starts and so before any weights load: the host list parses, the model resolves,
the model can be split that way over that many ranks, every remote host answers
over SSH.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from typing import Any

from mlxk.engine.distributed.launch import HostSet
from mlxk.engine.distributed.shardplan import ShardPlan
from mlxk.output.console import Output
from mlxk.output.human import size_str


@dataclass
class Prepared:
    hosts: HostSet
    plan: ShardPlan
    model_ref: str            # what each rank resolves (name@commit or a path)
    model_name: str


def prepare(args: argparse.Namespace, check_hosts: bool = True) -> Prepared:
    from mlxk.engine.distributed.launch import model_ref_for_ranks, parse_hosts, preflight
    from mlxk.engine.distributed.shardplan import plan_for_dir

    hs = parse_hosts(args.hosts, args.hostfile, args.backend)
    resolved = _check_runnable(args.model)
    plan = plan_for_dir(resolved.path, len(hs.hosts), args.parallel)
    if check_hosts:
        preflight(hs)
    ref = model_ref_for_ranks(resolved.name, resolved.commit, resolved.path, resolved.cached)
    return Prepared(hs, plan, ref, resolved.display)


def _check_runnable(ref: str) -> Any:
    """The single-process checks (embedding model, unsupported architecture) apply too."""
    from mlxk.operations.run import resolve_runnable

    return resolve_runnable(ref)


def plan_data(p: Prepared) -> dict[str, Any]:
    return {
        "model": p.model_name,
        "backend": p.hosts.backend,
        "hosts": [{"rank": h.rank, "ssh": h.ssh, "ips": h.ips} for h in p.hosts.hosts],
        "plan": p.plan.to_dict(),
    }


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


def spec_for(p: Prepared, command: str, **extra: Any) -> dict[str, Any]:
    return {"command": command, "model": p.model_ref, "name": p.model_name, "mode": p.plan.mode,
            "backend": p.hosts.backend, "seed": random.randrange(2**31), **extra}


def dry_run(args: argparse.Namespace, out: Output) -> int:
    p = prepare(args, check_hosts=False)
    out.result(plan_data(p), render_plan)
    return 0


def start_session(args: argparse.Namespace, out: Output) -> Any:
    """Checks, then ranks up and loaded; returns a DistributedSession (caller closes it)."""
    from mlxk.engine.distributed.session import DistributedSession

    p = prepare(args)
    out.info(f"Starting {len(p.hosts.hosts)} ranks ({p.plan.mode} parallel, {p.hosts.backend} backend)...")
    session = DistributedSession(p.hosts, spec_for(p, "run"))
    try:
        ready = session.wait_ready()
    except BaseException:
        session.group.shutdown(grace=2.0)
        raise
    if getattr(args, "verbose", False):
        mem = ", ".join(f"rank {i}: {size_str(kib * 1024)}" for i, kib in enumerate(ready.get("memory_kib", [])))
        out.info(f"Loaded in {ready.get('load_seconds', 0):.2f}s; memory {mem}")
    return session


def serve(args: argparse.Namespace, out: Output, server_options: dict[str, Any]) -> int:
    """`serve --hosts`: rank 0 runs the HTTP server; this process supervises the ranks."""
    from mlxk.engine.distributed.session import supervise
    from mlxk.errors import UsageError

    if not getattr(args, "model", None):
        raise UsageError("serve --hosts needs --model: the sharded model is loaded on every rank at start")
    if getattr(args, "dry_run", False):
        return dry_run(args, out)
    p = prepare(args)
    out.info(f"Starting {len(p.hosts.hosts)} ranks ({p.plan.mode} parallel, {p.hosts.backend} backend)...")

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("ev") == "ready":
            mem = ", ".join(f"rank {i} {size_str(k * 1024)}" for i, k in enumerate(ev.get("memory_kib", [])))
            out.info(f"All ranks loaded in {ev.get('load_seconds', 0):.1f}s (memory: {mem})")
        elif ev.get("ev") == "listening":
            from mlxk.server.ui import page_url

            ui = page_url(ev["host"], ev["port"]) if server_options.get("ui", True) else None
            data = {"host": ev["host"], "port": ev["port"], "model": ev.get("model"), "pid": ev.get("pid"),
                    "ui": ui, "ranks": len(p.hosts.hosts), "parallel": p.plan.mode}
            out.result(data, _listening_text)

    # Server settings (an API key among them) go to rank 0 over its stdin pipe, never argv.
    return supervise(p.hosts, spec_for(p, "serve"), on_event, first_op={"op": "serve", "server": server_options})


def _listening_text(d: dict[str, Any]) -> str:
    page = f"; chat page {d['ui']}" if d.get("ui") else ""
    return (f"mlxk serve: listening on http://{d['host']}:{d['port']}, model {d['model']}{page} "
            f"({d['parallel']} parallel over {d['ranks']} ranks; Ctrl-C to stop)")


def run_cli(args: argparse.Namespace, out: Output, text: str | None = None) -> int:
    """`run --hosts`: one prompt through the ranks, printed exactly as a single process prints it
    (the request is built by the same ``operations.run.single_request``)."""
    from mlxk.cli.run import _options
    from mlxk.errors import UsageError
    from mlxk.operations import run as ops

    if getattr(args, "dry_run", False):
        return dry_run(args, out)
    options = _options(args)
    if text is None and not out.stdin.isatty():
        text = ops.combine_stdin([], out.stdin.read())  # `echo hi | mlxk run M --hosts ...`
    if text is None:
        raise UsageError("interactive chat is not available with --hosts; give a prompt (or '-' for stdin)")
    if not text.strip():
        raise UsageError("the prompt is empty")
    request = ops.single_request(text, options)
    session = start_session(args, out)
    turn = ops.Turn()
    try:
        chunks = _track(session.stream(request), turn)
        _print(chunks, turn, args, out, text, session.ready or {})
    finally:
        session.close()
    return 0


def _track(chunks: Any, turn: Any) -> Any:
    for chunk in chunks:
        turn.text += chunk.text
        turn.reasoning += chunk.reasoning
        if chunk.finish_reason:
            turn.final = chunk
        yield chunk


def _print(chunks: Any, turn: Any, args: argparse.Namespace, out: Output, prompt: str,
           ready: dict[str, Any]) -> None:
    from mlxk.cli.chat_ui import print_answer
    from mlxk.operations import run as ops

    name = ready.get("name") or args.model
    if out.json_mode:
        for _ in chunks:
            pass
        out.result(ops.result_data(name, prompt, turn))
        return
    print_answer(chunks, turn, out, name, hide_reasoning=args.hide_reasoning,
                 no_stream=args.no_stream, verbose=args.verbose)
