"""`mlxk show`: details of one model."""

from __future__ import annotations

import argparse
import json

from mlxk.cli.options import add_model_arg
from mlxk.output.console import Output
from mlxk.output.human import size_str

NAME = "show"
HELP = "show details of one model"
DESCRIPTION = ("Show a model's type, health, runtime compatibility and metadata; on a LoRA adapter\n"
               "folder (mlx-lm format), its base model, rank, layers, scale and size.")
EXAMPLE = ("Examples:\n  mlxk show Qwen3-4B-4bit\n  mlxk show org/name@1a2b --files --config\n"
           "  mlxk show ./adapters")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arg(p)
    p.add_argument("--files", action="store_true", help="list the files of the revision")
    p.add_argument("--config", action="store_true", help="include the parsed config.json")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.models import show_model

    data = show_model(args.model, files=args.files, config=args.config)
    out.result(data, render)
    return 0


def _value(key: str, value: object) -> str:
    """Human form of one metadata value: yes/no, thousands separators, M/B for parameters."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "parameter_count" and isinstance(value, int):
        short = f"{value / 1e9:.2f}B" if value >= 1e9 else f"{value / 1e6:.1f}M"
        return f"{value:,} ({short})"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_adapter(a: dict) -> str:
    if a["base_in_cache"]:
        base = f"{a['base_model']} (in the cache)"
    elif a["base_model"]:
        base = f"{a['base_model']} ({'local folder' if a['base_local_dir'] else 'not in the cache'})"
    else:
        base = "- (the adapter config names none)"
    layers = a["layers"]
    span = f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else ", ".join(map(str, layers)) or "-"
    count = a["num_layers"] if a["num_layers"] is not None else len(layers)
    rows = [("Adapter", a["path"]), ("Base model", base), ("Fine-tune type", a["fine_tune_type"]),
            ("Rank", a["rank"]), ("Scale", a["scale"]), ("Dropout", a["dropout"]),
            ("Layers", f"{count} (blocks {span})"), ("Modules", ", ".join(a["modules"]) or "-"),
            ("Parameters", a["parameter_count"]), ("Size", size_str(a["size_bytes"]))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None else _value(k, v)}" for k, v in rows)


def render(data: dict) -> str:
    if "adapter" in data:
        return render_adapter(data["adapter"])
    m, meta = data["model"], data["metadata"]
    rows = [("Name", m["name"]), ("Hash", m["hash"] or "-"), ("Size", size_str(m["size_bytes"])),
            ("Modified", m["last_modified"]), ("Framework", m["framework"]),
            ("Type", m["model_type"]), ("Capabilities", ", ".join(m["capabilities"]) or "-"),
            ("Health", m["health"]), ("Runtime", "compatible" if m["runtime_compatible"] else "not compatible")]
    if m["reason"]:
        rows.append(("Reason", m["reason"]))
    for key in ("model_type", "architecture", "quantization", "context_length", "vocab_size",
                "hidden_size", "num_attention_heads", "num_hidden_layers", "parameter_count",
                "embedding_dimension", "chat_template", "engine"):
        if meta.get(key) is not None:
            rows.append((key.replace("_", " ").capitalize(), _value(key, meta[key])))
    if "parallel_modes" in meta:
        rows.append(("Parallel", ", ".join(meta["parallel_modes"]) or "none (cannot be sharded)"))
    revisions = meta.get("revisions", [])
    for i, r in enumerate(revisions):
        refs = f"  ({', '.join(r['refs'])})" if r["refs"] else ""
        rows.append(("Revisions" if i == 0 else "", f"{r['hash'][:12]}  {size_str(r['size_bytes'])}{refs}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if "files" in data:
        lines.append("Files:")
        files = data["files"]
        name_w = max((len(f["name"]) for f in files), default=0)
        size_w = max((len(size_str(f["size_bytes"])) for f in files), default=0)
        lines += [f"  {f['name'].ljust(name_w)}  {size_str(f['size_bytes']).rjust(size_w)}  {f['type']}"
                  for f in files]
    if "config" in data:
        lines.append("Config:")
        lines.append(json.dumps(data["config"], indent=2))
    return "\n".join(lines)
