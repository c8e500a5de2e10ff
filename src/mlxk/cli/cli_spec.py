"""A plain description of the CLI, read from the argparse parser itself.

Shell completion and the generated command reference both come from here, so
neither can drift from ``mlxk.cli.main.build_parser``. Importing this module is
as cheap as building the parser (no mlx).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

# What a value completes to: a cached model name, a path, one of fixed choices, or nothing.
MODEL, FILE, CHOICE, VALUE = "model", "file", "choice", "value"

_MODEL_DESTS = {"model", "models", "pattern", "model_ref", "ref"}
_FILE_WORDS = ("file", "path", "dir", "folder", "schema", "gguf", "out", "output", "source")


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]          # e.g. ("-f", "--force")
    help: str
    kind: str | None                # None: a switch that takes no value
    choices: tuple[str, ...] = ()
    metavar: str = ""

    @property
    def long(self) -> str:
        longs = [n for n in self.names if n.startswith("--")]
        return longs[0] if longs else self.names[0]


@dataclass(frozen=True)
class Positional:
    dest: str
    help: str
    kind: str | None                # None: free text (a prompt), nothing to complete
    choices: tuple[str, ...] = ()
    repeat: bool = False            # nargs * or +: every later word is this too


@dataclass
class Command:
    name: str
    aliases: tuple[str, ...]
    help: str
    flags: list[Flag] = field(default_factory=list)
    positionals: list[Positional] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def value_flags(self) -> list[str]:
        return [n for f in self.flags if f.kind is not None for n in f.names]


@dataclass
class CliSpec:
    global_flags: list[Flag]
    commands: list[Command]

    def command(self, name: str) -> Command:
        for c in self.commands:
            if name in c.names:
                return c
        raise KeyError(name)


def _kind_for(action: argparse.Action, positional: bool) -> str | None:
    if action.choices:
        return CHOICE
    if not positional and action.nargs == 0:
        return None
    dest = action.dest.lower()
    words = f"{dest} {str(action.metavar or '').lower()}"
    if dest in _MODEL_DESTS or dest.startswith("model"):
        return MODEL
    if any(w in words for w in _FILE_WORDS):
        return FILE
    return None if positional else VALUE


def _flag(action: argparse.Action) -> Flag:
    kind = _kind_for(action, positional=False)
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return Flag(names=tuple(action.option_strings), help=_one_line(action.help),
                kind=kind, choices=tuple(str(c) for c in action.choices or ()),
                metavar="" if kind is None else metavar)


def _one_line(text: str | None) -> str:
    if not text or text == argparse.SUPPRESS:
        return ""
    return " ".join(text.split()).replace("%(default)s", "").replace("%%", "%")


def _visible(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)


def _command(name: str, aliases: tuple[str, ...], help_text: str,
             parser: argparse.ArgumentParser) -> Command:
    cmd = Command(name=name, aliases=aliases, help=_one_line(help_text))
    for action in parser._actions:
        if not _visible(action):
            continue
        if action.option_strings:
            cmd.flags.append(_flag(action))
        else:
            cmd.positionals.append(Positional(
                dest=action.dest, help=_one_line(action.help),
                kind=_kind_for(action, positional=True),
                choices=tuple(str(c) for c in action.choices or ()),
                repeat=action.nargs in ("*", "+", argparse.REMAINDER)))
    return cmd


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the mlxk parser has no sub-commands")


def cli_spec(parser: argparse.ArgumentParser | None = None) -> CliSpec:
    """Describe every visible command, alias, flag and positional of ``parser``."""
    if parser is None:
        from mlxk.cli.main import build_parser

        parser, _ = build_parser()
    sub = _subparsers(parser)
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    by_parser: dict[int, list[str]] = {}
    for name, p in sub.choices.items():
        by_parser.setdefault(id(p), []).append(name)
    commands = []
    for names in by_parser.values():
        p = sub.choices[names[0]]
        if helps.get(names[0]) == argparse.SUPPRESS:
            continue
        commands.append(_command(names[0], tuple(names[1:]), helps.get(names[0], ""), p))
    global_flags = [_flag(a) for a in parser._actions if a.option_strings and _visible(a)]
    return CliSpec(global_flags=global_flags, commands=commands)
