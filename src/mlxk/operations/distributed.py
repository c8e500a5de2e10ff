"""`run --hosts` / `serve --hosts`: the distributed use cases, sharing the local ones' checks and output.

Everything that can be wrong is checked here, in this order, before any rank starts
and so before any weights load: the settings (the same ``operations.serve.check_settings``
a local server runs), the host list parses, the model resolves and is runnable (the same
``operations.run.resolve_runnable``), the model can be split that way over that many
ranks, every remote host answers over SSH. A single-shot run builds its request and its
``--json`` data with the local run's functions, so both print the same envelope.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from mlxk.engine.distributed.launch import HostSet
from mlxk.engine.distributed.session import DistributedSession
from mlxk.engine.distributed.shardplan import ShardPlan
from mlxk.engine.types import Chunk
from mlxk.errors import ExecutionError, UsageError
from mlxk.operations import run as ops
from mlxk.server.settings import ServerSettings

# The module every rank runs as its main (python -m ...).
RANK_ENTRY = "mlxk.operations.rank"


@dataclass(frozen=True)
class HostOptions:
    """The ``--hosts`` / ``--hostfile`` / ``--backend`` / ``--parallel`` flags."""

    hosts: str | None = None
    hostfile: str | None = None
    backend: str | None = None
    parallel: str | None = None


@dataclass
class Prepared:
    hosts: HostSet
    plan: ShardPlan
    model_ref: str            # what each rank resolves (name@commit or a path)
    model_name: str


def prepare(model: str | None, where: HostOptions, check_hosts: bool = True) -> Prepared:
    from mlxk.engine.distributed.launch import model_ref_for_ranks, parse_hosts, preflight
    from mlxk.engine.distributed.shardplan import plan_for_dir

    if not model:
        raise UsageError("--hosts needs --model: the sharded model is loaded on every rank at start")
    hs = parse_hosts(where.hosts, where.hostfile, where.backend)
    resolved = ops.resolve_runnable(model)   # the single-process refusals apply too
    plan = plan_for_dir(resolved.path, len(hs.hosts), where.parallel)
    if check_hosts:
        preflight(hs)
    ref = model_ref_for_ranks(resolved.name, resolved.commit, resolved.path, resolved.cached)
    return Prepared(hs, plan, ref, resolved.display)


def plan_data(p: Prepared) -> dict[str, Any]:
    """The ``--dry-run`` data: hosts and the shard plan."""
    return {
        "model": p.model_name,
        "backend": p.hosts.backend,
        "hosts": [{"rank": h.rank, "ssh": h.ssh, "ips": h.ips} for h in p.hosts.hosts],
        "plan": p.plan.to_dict(),
    }


def spec_for(p: Prepared, command: str) -> dict[str, Any]:
    return {"command": command, "model": p.model_ref, "name": p.model_name, "mode": p.plan.mode,
            "backend": p.hosts.backend, "seed": random.randrange(2**31)}


def start_session(p: Prepared) -> DistributedSession:
    """Ranks up and loaded; the caller closes the session."""
    session = DistributedSession(p.hosts, spec_for(p, "run"), RANK_ENTRY)
    try:
        session.wait_ready()
    except BaseException:
        session.group.shutdown(grace=2.0)
        raise
    return session


def check_prompt(text: str | None) -> str:
    if text is None:
        raise UsageError("interactive chat is not available with --hosts; give a prompt (or '-' for stdin)")
    if not text.strip():
        raise UsageError("the prompt is empty")
    return text


def stream(session: DistributedSession, text: str, options: ops.RunOptions,
           turn: ops.Turn) -> Iterator[Chunk]:
    """One prompt through the ranks; ``turn`` fills as a local ``ChatSession.ask`` fills it."""
    for chunk in session.stream(ops.single_request(text, options)):
        turn.add(chunk)
        yield chunk


# --- serve --------------------------------------------------------------------------------
def check_serve(settings: ServerSettings, warn: Callable[[str], None]) -> None:
    """The local server's setting checks; its warnings (a public bind, ...) go to ``warn``."""
    from mlxk.operations.serve import check_settings

    for w in check_settings(settings):
        warn(w)


def serve(settings: ServerSettings, model: str | None, where: HostOptions,
          on_event: Callable[[Prepared, dict[str, Any]], None], warn: Callable[[str], None],
          on_start: Callable[[Prepared], None] | None = None) -> int:
    """`serve --hosts`: rank 0 runs the HTTP server; this process supervises the ranks.

    The settings pass the local server's checks first (and its warnings are shown);
    ``--restart`` starts the ranks again after a crash once they had been serving, with the
    local supervisor's limit of restarts per minute.
    """
    from mlxk.engine.distributed.session import supervise
    from mlxk.server.supervisor import MAX_RESTARTS, RESTART_WINDOW_S

    check_serve(settings, warn)
    p = prepare(model, where)
    restarts: list[float] = []
    while True:
        listening = False
        if on_start is not None:
            on_start(p)

        def event(ev: dict[str, Any]) -> None:
            nonlocal listening
            listening = listening or ev.get("ev") == "listening"
            on_event(p, ev)

        try:
            # Server settings (an API key among them) go to rank 0 over its stdin pipe, never argv.
            return supervise(p.hosts, spec_for(p, "serve"), RANK_ENTRY, event,
                             first_op={"op": "serve", "server": asdict(settings)})
        except ExecutionError as exc:
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW_S]
            if not settings.restart or not listening or len(restarts) >= MAX_RESTARTS:
                raise
            restarts.append(now)
            warn(f"{exc.message}; restarting the ranks ({len(restarts)}/{MAX_RESTARTS})")
