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

from mlxk.engine.launcher import HostSet
from mlxk.engine.shardplan import ShardPlan
from mlxk.output.console import Output
from mlxk.output.human import size_str


@dataclass
class Prepared:
    hosts: HostSet
    plan: ShardPlan
    model_ref: str            # what each rank resolves (name@commit or a path)
    model_name: str


def prepare(args: argparse.Namespace, check_hosts: bool = True) -> Prepared:
    from mlxk.cache.resolve import resolve
    from mlxk.engine.launcher import model_ref_for_ranks, parse_hosts, preflight
    from mlxk.engine.shardplan import plan_for_dir

    hs = parse_hosts(args.hosts, args.hostfile, args.backend)
    resolved = resolve(args.model)
    _check_runnable(resolved.path)
    plan = plan_for_dir(resolved.path, len(hs.hosts), args.parallel)
    if check_hosts:
        preflight(hs)
    ref = model_ref_for_ranks(resolved.name, resolved.commit, resolved.path, resolved.cached)
    return Prepared(hs, plan, ref, resolved.name)


def _check_runnable(path: Any) -> None:
    """The single-process checks (embedding model, unsupported architecture) apply too."""
    try:
        from mlxk.cache.detect import describe
    except ImportError:  # pragma: no cover
        return
    from mlxk.errors import NotRuntimeCompatible

    d = describe(path)
    if d.model_type == "embedding":
        raise NotRuntimeCompatible("this is an embedding model; use 'mlxk embed'")
    if not d.runtime_compatible:
        raise NotRuntimeCompatible(f"not runnable: {d.runtime_reason or 'unsupported model'}")


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
    from mlxk.engine.dist_session import DistributedSession

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
    from mlxk.engine.dist_session import supervise
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
            data = {"host": ev["host"], "port": ev["port"], "model": ev.get("model"), "pid": ev.get("pid"),
                    "ranks": len(p.hosts.hosts), "parallel": p.plan.mode}
            out.result(data, _listening_text)

    # Server settings (an API key among them) go to rank 0 over its stdin pipe, never argv.
    return supervise(p.hosts, spec_for(p, "serve"), on_event, first_op={"op": "serve", "server": server_options})


def _listening_text(d: dict[str, Any]) -> str:
    return (f"mlxk serve: listening on http://{d['host']}:{d['port']}, model {d['model']} "
            f"({d['parallel']} parallel over {d['ranks']} ranks; Ctrl-C to stop)")


def generation_request(args: argparse.Namespace, prompt: str) -> Any:
    from mlxk.engine.types import GenerationRequest, SamplingParams

    def val(name: str, default: Any) -> Any:
        v = getattr(args, name, None)
        return default if v is None else v

    sampling = SamplingParams(temperature=val("temperature", 0.7), top_p=val("top_p", 1.0),
                              top_k=val("top_k", 0), min_p=val("min_p", 0.0),
                              repetition_penalty=val("repetition_penalty", 1.0), seed=val("seed", None))
    if getattr(args, "no_chat_template", False):
        return GenerationRequest(prompt=prompt, sampling=sampling, max_tokens=args.max_tokens,
                                 use_chat_template=False)
    messages = []
    if getattr(args, "system", None):
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    return GenerationRequest(messages=messages, sampling=sampling, max_tokens=args.max_tokens)


def run_cli(args: argparse.Namespace, out: Output, prompt: str | None) -> int:
    """`run --hosts`: one prompt through the ranks; same output shapes as a single process."""
    import time

    from mlxk.errors import UsageError

    if getattr(args, "dry_run", False):
        return dry_run(args, out)
    if prompt is None:
        raise UsageError("interactive chat is not available with --hosts; give a prompt (or '-' for stdin)")
    request = generation_request(args, prompt)
    t0 = time.perf_counter()
    session = start_session(args, out)
    pieces: list[str] = []
    final = None
    stream_text = not out.json_mode and not getattr(args, "no_stream", False)
    try:
        for chunk in session.stream(request):
            if chunk.finish_reason is not None:
                final = chunk
            piece = chunk.text
            if not piece:
                continue
            pieces.append(piece)
            if stream_text:
                out.stdout.write(piece)
                out.stdout.flush()
    finally:
        session.close()
    text = "".join(pieces)
    if out.json_mode:
        out.result({"model": args.model, "prompt": prompt, "response": text,
                    "usage": {"prompt_tokens": final.prompt_tokens if final else 0,
                              "completion_tokens": final.completion_tokens if final else 0},
                    "finish_reason": final.finish_reason if final else None,
                    "timing": {"total_s": time.perf_counter() - t0, **((final.timing or {}) if final else {})}})
    elif stream_text:
        out.stdout.write("\n")
        out.stdout.flush()
    else:
        out.text(text)
    return 0
