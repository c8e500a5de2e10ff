"""Served LoRA adapters: ``serve --lora [BASE+][NAME=]DIR`` (repeatable) and ``loras`` tables in
``--model-options``. Each adapter is served as its own model, ``<base>+<name>``, next to the plain
base (which runs without it). No mlx here.

Naming (what a request's ``model`` may say):
- ``org/name+sql`` or ``name+sql``: the base as any request names it, then ``+`` and the adapter's
  name. Hub names cannot hold ``+``, so the split is never ambiguous. An adapter name the server
  does not serve for that base is ``model_not_found`` (404).
- ``sql`` alone (vLLM's ``--lora-modules`` habit): the adapter of that name when exactly one base
  serves it; an exact adapter name wins over the cache's substring matching.

Which base an adapter sits on, at start-up: ``BASE`` when the flag gives it, else ``--model``,
else the model the adapter's own config names (``mlx_lm.lora`` records it) when the cache holds
exactly that model; otherwise the server refuses to start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mlxk.errors import AmbiguousMatch, MlxkError, ModelNotFound, ValidationError

SEP = "+"


@dataclass(frozen=True)
class ServedAdapter:
    name: str           # what follows '+' in a request's model
    base: str           # the base's id as clients see it (org/name, or a local folder's name)
    base_ref: str       # what loads the base: a cache name (maybe @rev) or an absolute folder
    path: str           # the adapter folder, absolute

    @property
    def id(self) -> str:
        return f"{self.base}{SEP}{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "base": self.base, "base_ref": self.base_ref, "path": self.path}


def parse_flag(value: str) -> tuple[str | None, str | None, str]:
    """``[BASE+][NAME=]DIR`` -> (base, name, dir)."""
    spec, eq, folder = value.partition("=")
    if not eq:
        return None, None, value
    base, plus, name = spec.rpartition(SEP)
    if not folder or not name or (plus and not base):
        raise ValidationError(f"--lora {value}: expected [BASE+][NAME=]DIR (e.g. sql=./adapters/sql)")
    return (base if plus else None), name, folder


def _check_name(name: str, where: str) -> str:
    if not name or SEP in name or "/" in name or "@" in name or any(c.isspace() for c in name):
        raise ValidationError(f"{where}: adapter name '{name}' must be one word without '+', '/', '@'")
    return name


def _base(ref: str) -> tuple[str, str]:
    """(id clients see, what loads it) for a base reference given at start-up."""
    from mlxk.cache.resolve import resolve

    resolved = resolve(ref)
    if resolved.cached:
        return resolved.name, resolved.display
    return Path(resolved.path).name, str(resolved.path)


def _config_base(folder: str, where: str) -> str:
    """The base an adapter's config names, when the cache holds exactly that model."""
    from mlxk.cache.adapters import read_config
    from mlxk.cache.resolve import find_repo

    named = read_config(folder).get("model")
    if isinstance(named, str) and named.strip() and not Path(named).is_absolute():
        try:
            repo_id, exact = find_repo(named.strip().rstrip("/"))
        except MlxkError:
            exact = False
        if exact:
            return repo_id
    what = f"its config names '{named}', not in the cache" if named else "its config names no base"
    raise ValidationError(f"{where}: which model does this adapter go on? {what}; give --model BASE "
                          f"or write --lora BASE+NAME=DIR")


def collect(flags: Iterable[str], model: str | None,
            per_model: dict[str, dict[str, str]]) -> list[ServedAdapter]:
    """Every served adapter, checked: the folder is an adapter, its base resolves, ids are unique.

    ``per_model``: ``{base: {name: dir}}`` from ``--model-options`` (dirs already absolute).
    """
    from mlxk.cache.adapters import read_config

    wanted: list[tuple[str, str | None, str, str]] = []   # (where, base ref, name, dir)
    for value in flags:
        base, name, folder = parse_flag(value)
        folder = str(Path(folder).expanduser().resolve())
        wanted.append((f"--lora {value}", base or model, name or Path(folder).name, folder))
    for base, table in per_model.items():
        wanted += [(f"--model-options [{base}].loras.{n}", base, n, d) for n, d in table.items()]
    served: dict[str, ServedAdapter] = {}
    for where, base_ref, name, folder in wanted:
        try:
            read_config(folder)
            _check_name(name, where)
            base_id, load_ref = _base(base_ref or _config_base(folder, where))
        except MlxkError as exc:
            raise ValidationError(f"{exc} [{where}]") from exc
        adapter = ServedAdapter(name, base_id, load_ref, folder)
        if adapter.id in served:
            raise ValidationError(f"{where}: {adapter.id} is served twice")
        served[adapter.id] = adapter
    return list(served.values())


class Adapters:
    """The server's served adapters, looked up by a request's model name."""

    def __init__(self, items: Iterable[dict[str, str]]) -> None:
        self.items = [ServedAdapter(**d) for d in items]

    def __bool__(self) -> bool:
        return bool(self.items)

    def by_id(self, key: str) -> ServedAdapter | None:
        return next((a for a in self.items if a.id == key), None)

    def find(self, name: str, base_key: Callable[[str], str]) -> ServedAdapter | None:
        """The adapter ``name`` asks for; None: a plain model name. ``base_key`` resolves a base
        the way any request's model is resolved (raises when it names nothing)."""
        if SEP not in name:
            hits = [a for a in self.items if a.name == name]
            if len(hits) > 1:
                raise AmbiguousMatch(f"adapter '{name}' is served over several bases; name one as "
                                     f"BASE+{name}", matches=[a.id for a in hits], param="model")
            return hits[0] if hits else None
        base, _, wanted = name.rpartition(SEP)
        hits = [a for a in self.items if a.name == wanted]
        if not hits:
            served = ", ".join(sorted(a.id for a in self.items)) or "none"
            raise ModelNotFound(f"adapter '{wanted}' is not served (served adapters: {served})",
                                param="model")
        exact = [a for a in hits if a.base == base]
        if exact:
            return exact[0]
        key = base_key(base)
        match = next((a for a in hits if a.base == key), None)
        if match is None:
            raise ModelNotFound(f"adapter '{wanted}' is served over {', '.join(a.base for a in hits)}, "
                                f"not over {key}", param="model")
        return match
