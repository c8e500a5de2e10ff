"""`mlxk show`: details of one model."""

from __future__ import annotations

import argparse
import json

from mlxk.cli.options import add_model_arg
from mlxk.output.console import Output
from mlxk.output.human import size_str

NAME = "show"
HELP = "show details of one model"
DESCRIPTION = "Show a model's type, health, runtime compatibility and metadata."
EXAMPLE = "Examples:\n  mlxk show Qwen3-4B-4bit\n  mlxk show org/name@1a2b --files --config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arg(p)
    p.add_argument("--files", action="store_true", help="list the files of the revision")
    p.add_argument("--config", action="store_true", help="include the parsed config.json")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.models import show_model

    data = show_model(args.model, files=args.files, config=args.config)
    out.result(data, render)
    return 0


def render(data: dict) -> str:
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
            rows.append((key.replace("_", " ").capitalize(), str(meta[key])))
    if "parallel_modes" in meta:
        rows.append(("Parallel", ", ".join(meta["parallel_modes"]) or "none (cannot be sharded)"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    for r in meta.get("revisions", []):
        lines.append(f"  revision {r['hash'][:12]}  {size_str(r['size_bytes'])}  {', '.join(r['refs'])}")
    if "files" in data:
        lines.append("Files:")
        lines += [f"  {f['name']}  {size_str(f['size_bytes'])}  {f['type']}" for f in data["files"]]
    if "config" in data:
        lines.append("Config:")
        lines.append(json.dumps(data["config"], indent=2))
    return "\n".join(lines)
