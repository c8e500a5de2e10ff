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

    if getattr(args, "dry_run", False):
        return dry_run(args, out)
    p = prepare(args)
    out.info(f"Starting {len(p.hosts.hosts)} ranks ({p.plan.mode} parallel, {p.hosts.backend} backend)...")
    return supervise(p.hosts, spec_for(p, "serve", server=server_options, json=out.json_mode))
