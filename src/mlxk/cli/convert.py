"""`mlxk convert`: a GGUF file, a cached model or a local HF folder -> an MLX model (folder or cache)."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output
from mlxk.output.human import size_str

NAME = "convert"
HELP = "convert a GGUF file or an HF checkpoint into an MLX model (optionally quantized)"
DESCRIPTION = (
    "SOURCE is a GGUF file, a cached model (name as in `mlxk list`, @hash for a revision) or a\n"
    "local Hugging Face folder (./path) with safetensors weights.\n"
    "Checkpoints are converted by mlx-lm (the same tensors `mlx_lm.convert` writes); --quantize\n"
    "quantizes them (default 4 bits, group size 64, affine). Settings mlx cannot use, and a disk\n"
    "without room for the result, are refused before any work.\n"
    "GGUF files: llama family (F16, F32, Q8_0, Q4_0, Q4_1 tensors; byte-level BPE tokenizer);\n"
    "their quantized blocks stay quantized (MLX affine, group size 32).\n"
    "--cache ORG/NAME adds the result to the HF cache as a model of its own (README front matter:\n"
    "base_model, source revision, settings), all at once: a failure leaves nothing behind."
)
EXAMPLE = ("Examples:\n"
           "  mlxk convert Qwen/Qwen2.5-0.5B-Instruct --quantize --cache me/Qwen2.5-0.5B-Instruct-4bit\n"
           "  mlxk convert ./my-finetune --quantize --q-bits 8 -o ./my-finetune-8bit\n"
           "  mlxk convert SmolLM2-135M-Instruct.Q4_1.gguf ./smollm2\n"
           "  mlxk convert model.gguf --cache local/my-model")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a .gguf file, a cached model, or a local HF folder (./path)")
    p.add_argument("output", nargs="?", default=None,
                   help="output directory (same as -o)")
    p.add_argument("-o", "--output", dest="output_dir", metavar="DIR", default=None,
                   help="write the converted model to this directory")
    p.add_argument("--cache", metavar="ORG/NAME", default=None,
                   help="add the converted model to the HF cache as ORG/NAME")
    p.add_argument("-q", "--quantize", action="store_true",
                   help="quantize the weights (checkpoints only)")
    p.add_argument("--q-bits", type=int, default=None, metavar="BITS",
                   help="bits per weight: 2, 3, 4, 5, 6, 8 (affine; default 4), 4 (mxfp4, nvfp4), 8 (mxfp8)")
    p.add_argument("--q-group-size", type=int, default=None, metavar="N",
                   help="weights per scale: 32, 64, 128 (affine; default 64), 32 (mxfp4, mxfp8), 16 (nvfp4)")
    p.add_argument("--q-mode", choices=("affine", "mxfp4", "nvfp4", "mxfp8"), default=None,
                   help="quantization mode (default affine)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="dtype of unquantized tensors and scales (default: the checkpoint's "
                        "torch_dtype; float32 for GGUF)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace a non-empty output directory / add a new revision to a cached ORG/NAME")


def _human(d: dict) -> str:
    lines = [f"Converted {d['source']} -> {d['architecture']} model ({d['quantization']}, "
             f"{d['tensor_count']} tensors, {size_str(d['size_before_bytes'])} -> "
             f"{size_str(d['size_after_bytes'])})"]
    if d.get("output"):
        lines.append(f"  directory: {d['output']}")
    if d.get("cache"):
        lines.append(f"  cached as: {d['cache']['repo_id']} ({d['cache']['commit'][:12]})")
        lines.append(f"  run it:    mlxk run {d['cache']['repo_id']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.errors import ValidationError
    from mlxk.operations.convert import ConvertOptions, convert

    if args.output and args.output_dir:
        raise ValidationError("give the output directory once (positional OUTPUT or -o DIR)")
    options = ConvertOptions(quantize=args.quantize, bits=args.q_bits, group_size=args.q_group_size,
                             mode=args.q_mode, dtype=args.dtype, force=args.force)
    data = convert(args.source, args.output or args.output_dir, cache_repo=args.cache,
                   options=options, info=out.info)
    out.result(data, _human)
    return 0
