"""`mlxk convert`: turn a llama-family GGUF file into an MLX model directory."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output
from mlxk.output.human import size_str

NAME = "convert"
HELP = "convert a GGUF file into an MLX model directory"
DESCRIPTION = (
    "Convert a llama-family GGUF file (F16, F32, Q8_0, Q4_0, Q4_1 tensors; byte-level BPE\n"
    "tokenizer) into an MLX model directory that `mlxk run` and `mlxk serve` accept by path.\n"
    "Quantized GGUF blocks stay quantized (MLX affine, group size 32). With --cache the\n"
    "result is imported into the HuggingFace cache under the given org/name."
)
EXAMPLE = ("Examples:\n  mlxk convert SmolLM2-135M-Instruct.Q4_1.gguf ./smollm2\n"
           "  mlxk convert model.gguf --cache local/my-model")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("gguf", help="path of the .gguf file")
    p.add_argument("output", nargs="?", default=None,
                   help="output directory (optional with --cache)")
    p.add_argument("--cache", metavar="ORG/NAME", default=None,
                   help="import the converted model into the HF cache as ORG/NAME")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="dtype of unquantized tensors and quantization scales (default float32)")
    p.add_argument("-f", "--force", action="store_true", help="replace a non-empty output directory")


def _human(d: dict) -> str:
    lines = [f"Converted {d['architecture']} model ({d['quantization']}, {d['tensor_count']} tensors, "
             f"{size_str(d['size_bytes'])})"]
    if d.get("output"):
        lines.append(f"  directory: {d['output']}")
    if d.get("cache"):
        lines.append(f"  cached as: {d['cache']['repo_id']} ({d['cache']['commit'][:12]})")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.convert import convert

    data = convert(args.gguf, args.output, cache_repo=args.cache, force=args.force,
                   dtype=args.dtype, info=out.info)
    out.result(data, _human)
    return 0
