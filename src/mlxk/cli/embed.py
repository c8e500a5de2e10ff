"""`mlxk embed`: vectors from an embedding model, as JSONL records or one JSON envelope."""

from __future__ import annotations

import argparse
import json

from mlxk.cli.options import add_model_arg
from mlxk.errors import ValidationError
from mlxk.output.console import Output

NAME = "embed"
HELP = "compute embedding vectors for texts (JSONL out)"
DESCRIPTION = """Compute embedding vectors with an embedding model (BERT family and other encoders).

Texts come from the arguments, or from stdin with '-': one text per line, or JSONL lines
with a "text" field whose other fields are copied to the output record.
Each output line is {"text", "embedding", "model", "dimensions"} (plus pass-through fields);
--json prints one envelope instead. Pooling and normalization follow the model's own
sentence-transformers config."""
EXAMPLE = """examples:
  mlxk embed sentence-transformers/all-MiniLM-L6-v2 "first text" "second text"
  cat docs.jsonl | mlxk embed all-MiniLM-L6-v2 - > vectors.jsonl"""


def _intermixed(p: argparse.ArgumentParser) -> None:
    """Let flags stand anywhere among the texts (``embed M --no-truncate "a" "b"``).

    Plain argparse binds the ``*`` positional at its first chunk and rejects later texts;
    intermixed parsing (stdlib) does not. Applied to this sub-parser only.
    """
    base = type(p)

    class _IntermixedParser(base):  # type: ignore[valid-type, misc]
        _busy = False

        def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
            if self._busy:
                return super().parse_known_args(args, namespace)
            self._busy = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._busy = False

    p.__class__ = _IntermixedParser


def add_arguments(p: argparse.ArgumentParser) -> None:
    _intermixed(p)
    add_model_arg(p)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed; '-' reads stdin")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="texts per forward pass (default 32)")
    p.add_argument("--truncate", action=argparse.BooleanOptionalAction, default=True,
                   help="cut texts longer than the model's limit (default); "
                        "--no-truncate makes them an error")


def _items(args: argparse.Namespace, out: Output) -> list:
    from mlxk.operations.embed import EmbedItem, parse_stdin_lines

    if args.texts == ["-"]:
        return parse_stdin_lines(out.read_stdin().splitlines(keepends=True))
    if "-" in args.texts:
        raise ValidationError("'-' (stdin) cannot be mixed with text arguments")
    if not args.texts:
        from mlxk.errors import UsageError

        raise UsageError("no input text (give texts as arguments, or '-' to read stdin)")
    return [EmbedItem(t) for t in args.texts]


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations import embed as op

    if args.batch_size < 1:
        raise ValidationError("--batch-size must be at least 1")
    items = _items(args, out)
    em = op.load(args.model)
    stats = op.EmbedStats()
    records = op.iter_records(em, items, args.batch_size, args.truncate, stats)
    if out.json_mode:
        collected = list(records)
        out.result(op.envelope_data(em, collected, stats))
        return 0
    for record in records:
        out.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.stdout.flush()
    if stats.truncated:
        out.info(f"embed: {stats.truncated} text(s) cut to the model's limit of "
                 f"{em.max_length} tokens")
    return 0
