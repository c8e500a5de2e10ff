"""Arguments shared by several commands, declared once."""

from __future__ import annotations

import argparse


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
    g.add_argument("--max-tokens", type=int, default=None,
                   help="maximum tokens to generate (default: derived from the context length)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.7)")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling (default 1.0 = off)")
    g.add_argument("--top-k", type=int, default=None, help="top-k sampling (default 0 = off)")
    g.add_argument("--min-p", type=float, default=None, help="min-p sampling (default 0.0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=None,
                   help="penalise repeated tokens (default 1.0 = off)")
    g.add_argument("--seed", type=int, default=None, help="random seed for reproducible sampling")
