"""Arguments shared by several commands, declared once."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlxk.operations.distributed import HostOptions
    from mlxk.operations.run import RunOptions


def add_json_flag(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: an absent sub-command flag must not overwrite a global `--json`.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print one JSON envelope to stdout")


def add_model_arg(p: argparse.ArgumentParser, help_text: str = "model name, org/name[@hash] or ./path") -> None:
    p.add_argument("model", help=help_text)


def add_force_flag(p: argparse.ArgumentParser, help_text: str = "do not ask for confirmation") -> None:
    p.add_argument("-f", "--force", action="store_true", help=help_text)


def add_dry_run_flag(p: argparse.ArgumentParser, help_text: str = "show what would happen, change nothing") -> None:
    p.add_argument("--dry-run", action="store_true", help=help_text)


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Sampling flags shared by `run` (and defaults for `serve`)."""
    g = p.add_argument_group("sampling")
    from mlxk import config

    g.add_argument("--max-tokens", type=int, default=None,
                   help=f"maximum tokens to generate (default {config.DEFAULT_RUN_MAX_TOKENS}; "
                        "a cut answer says so on stderr)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.7)")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling (default 1.0 = off)")
    g.add_argument("--top-k", type=int, default=None, help="top-k sampling (default 0 = off)")
    g.add_argument("--min-p", type=float, default=None, help="min-p sampling (default 0.0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=None,
                   help="penalise repeated tokens (default 1.0 = off)")
    g.add_argument("--seed", type=int, default=None, help="random seed for reproducible sampling")


def add_cache_flags(p: argparse.ArgumentParser) -> None:
    """KV-cache flags of `run` and `serve` (see engine/kvcache.py)."""
    g = p.add_argument_group("KV cache")
    g.add_argument("--max-kv-size", type=int, default=None, metavar="N",
                   help="bounded context: keep the last N tokens in a rotating KV cache")
    g.add_argument("--kv-bits", type=int, default=None, choices=(4, 8),
                   help="quantize the KV cache (less memory, long contexts): 8 = 8-bit keys and "
                        "values, 4 = 4-bit values and 5-bit keys")
    g.add_argument("--kv-group-size", type=int, default=64, choices=(32, 64, 128),
                   help="values per quantization group of the KV cache (default 64; smaller for "
                        "heads it does not divide)")
    g.add_argument("--quantized-kv-start", type=int, default=0, metavar="N",
                   help="quantize the KV cache once it holds N tokens (default 0: from the start)")
    a = p.add_argument_group("adapters")
    a.add_argument("--adapter-path", default=None, metavar="DIR",
                   help="apply a LoRA adapter (mlx-lm format: adapter_config.json + adapters.safetensors)")


def cache_options(args: argparse.Namespace) -> Any:
    """The ``CacheOptions`` of the flags, checked."""
    from mlxk.engine.kvcache import check
    from mlxk.engine.types import CacheOptions

    return check(CacheOptions(max_kv_size=args.max_kv_size, kv_bits=args.kv_bits,
                              kv_group_size=args.kv_group_size,
                              quantized_kv_start=args.quantized_kv_start))


def add_distributed_flags(p: argparse.ArgumentParser) -> None:
    """Flags that shard `run` / `serve` across ranks (see docs/distributed.md)."""
    g = p.add_argument_group("distributed (shard the model across ranks with mlx.launch)")
    g.add_argument("--hosts", default=None, metavar="H1,H2,...",
                   help="one rank per host, e.g. 127.0.0.1,127.0.0.1 or 10.0.0.1,10.0.0.2")
    g.add_argument("--hostfile", default=None, metavar="FILE",
                   help="mlx.launch JSON hostfile (ssh names, ips, backend, envs)")
    g.add_argument("--backend", default=None, choices=("ring", "mpi", "nccl", "jaccl", "jaccl-ring"),
                   help="MLX distributed backend (default: the hostfile's, else ring)")
    g.add_argument("--parallel", default=None, choices=("tensor", "pipeline"),
                   help="how to shard (default: the mode the model supports; tensor when both)")
    if "--dry-run" not in p._option_string_actions:
        g.add_argument("--dry-run", action="store_true",
                       help="with --hosts: print the shard plan (layers/heads/bytes per rank), load nothing")


def distributed_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "hosts", None) or getattr(args, "hostfile", None))


_DISTRIBUTED_ONLY = ("backend", "parallel")


def require_hosts_for_distributed_flags(args: argparse.Namespace) -> None:
    """``--dry-run``, ``--backend``, ``--parallel`` only mean something with ``--hosts``/``--hostfile``;
    without them they would silently do something else (a real server, a full generation)."""
    if distributed_requested(args):
        return
    used = [f"--{n.replace('_', '-')}" for n in _DISTRIBUTED_ONLY if getattr(args, n, None)]
    if getattr(args, "dry_run", False):
        used.insert(0, "--dry-run")
    if used:
        from mlxk.errors import UsageError

        raise UsageError(f"{', '.join(used)} needs --hosts or --hostfile (it plans or shards a "
                         f"distributed run)")


def run_options(args: argparse.Namespace) -> RunOptions:
    """`run`'s sampling and prompt flags, checked (shared by local and ``--hosts`` runs)."""
    from mlxk.engine.types import SamplingParams
    from mlxk.errors import ValidationError
    from mlxk.operations.run import RunOptions

    sampling = SamplingParams.given(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                    min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                                    seed=args.seed)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValidationError("--max-tokens must be at least 1")
    from mlxk.engine.sampling import validate

    validate(sampling)
    response_format = None
    if args.json_schema:
        from mlxk.engine.structured.plan import response_format_from_file

        response_format = response_format_from_file(args.json_schema)
    from mlxk import config

    max_tokens = config.DEFAULT_RUN_MAX_TOKENS if args.max_tokens is None else args.max_tokens
    return RunOptions(sampling=sampling, max_tokens=max_tokens, stop=tuple(args.stop),
                      system=args.system, use_chat_template=not args.no_chat_template,
                      response_format=response_format)


def host_options(args: argparse.Namespace) -> HostOptions:
    from mlxk.operations.distributed import HostOptions

    return HostOptions(hosts=args.hosts, hostfile=args.hostfile, backend=args.backend,
                       parallel=args.parallel)


def _keep_alive(text: str) -> float:
    from mlxk.duration import parse_keep_alive
    from mlxk.errors import ValidationError

    try:
        return parse_keep_alive(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def add_keep_alive_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, default: float | None,
                        help_text: str) -> None:
    """``--keep-alive``: seconds or a duration (``300``, ``5m``, ``1h``), ``0`` or ``-1`` (see mlxk.duration)."""
    p.add_argument("--keep-alive", type=_keep_alive, default=default, metavar="DURATION", help=help_text)


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """``--server`` / ``--api-key`` for the commands that talk to a running ``mlxk serve``."""
    p.add_argument("--server", default=None, metavar="URL",
                   help="the server (default: MLXK_SERVER, else http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="sent as 'Authorization: Bearer KEY' (default: MLXK_API_KEY)")
