"""Model references -> a concrete model (contract section 3).

Order: explicit path, ``name@hash``, exact ``org/name``, ``mlx-community/<name>``,
case-insensitive substring. Names are validated before they touch the disk, so
no reference can address a path outside the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlxk import config
from mlxk.cache import layout, scan
from mlxk.errors import AmbiguousMatch, HashNotFound, ModelNotFound, ValidationError

HASH_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
_PATH_PREFIXES = ("./", "../", "/", "~/", ".\\", "..\\")


@dataclass(frozen=True)
class ResolvedModel:
    name: str                 # org/name, or the absolute path of a local directory
    repo_id: str | None       # None for a local directory
    commit: str | None        # selected revision (None for a local directory)
    path: Path                # snapshot dir or local dir
    cached: bool
    exact: bool = True        # False when found by the fuzzy substring rule
    revision_explicit: bool = False  # the reference named a revision (``@hash``)

    @property
    def display(self) -> str:
        if self.revision_explicit and self.commit:
            return f"{self.name}@{self.commit[:12]}"
        return self.name


def validate_name(name: str) -> str:
    """Reject names that could escape the cache or are not a plausible ``org/name``."""
    if name is None or not name.strip():
        raise ValidationError("Model name must not be empty")
    if len(name) > config.MAX_MODEL_NAME_LENGTH:
        raise ValidationError(f"Model name is too long ({len(name)} > {config.MAX_MODEL_NAME_LENGTH} characters)")
    if ".." in name:
        raise ValidationError(f"Invalid model name '{name}': '..' is not allowed")
    if "\\" in name:
        raise ValidationError(f"Invalid model name '{name}': backslashes are not allowed")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValidationError(f"Invalid model name '{name}': leading, trailing or double '/'")
    if any(ord(c) < 32 for c in name) or "\x7f" in name:
        raise ValidationError(f"Invalid model name '{name}': control characters are not allowed")
    if name.count("/") > 1:
        raise ValidationError(f"Invalid model name '{name}': expected 'org/name'")
    if "--" in name:
        raise ValidationError(f"Invalid model name '{name}': '--' is not allowed")
    return name


def is_explicit_path(ref: str) -> bool:
    return ref.startswith(_PATH_PREFIXES) or ref in (".", "..")


def split_revision(ref: str) -> tuple[str, str | None]:
    """``org/name@abcd`` -> (``org/name``, ``abcd``). The hash must be >= 4 hex digits."""
    if "@" not in ref:
        return ref, None
    name, _, rev = ref.rpartition("@")
    if not HASH_RE.match(rev):
        raise ValidationError(f"Invalid revision '{rev}': expected a commit hash prefix of at least 4 hex digits")
    return name, rev.lower()


def _local(ref: str) -> ResolvedModel:
    path = Path(ref).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"No model directory at '{ref}' (config.json not found)")
    return ResolvedModel(str(path), None, None, path, cached=False)


def find_repo(name: str, root: Path | None = None) -> tuple[str, bool]:
    """Name -> (repo_id, exact) using rules 3-5 of the contract."""
    ids = scan.list_repo_ids(root)
    idset = set(ids)
    if name in idset:
        return name, True
    if "/" not in name:
        short = f"{config.MLX_COMMUNITY_ORG}/{name}"
        if short in idset:
            return short, True
    needle = name.lower()
    hits = [i for i in ids if needle in i.lower()]
    if len(hits) == 1:
        return hits[0], False
    if not hits:
        raise not_found(name, ids)
    exact_ci = [i for i in hits if i.lower() == needle]
    if len(exact_ci) == 1:
        return exact_ci[0], False
    raise AmbiguousMatch(f"'{name}' matches {len(hits)} models; be more specific", matches=hits)


def suggestions(name: str, ids: list[str], limit: int = 3) -> list[str]:
    """Cached repo ids close to ``name`` (a typo, a missing org), best first."""
    import difflib

    needle = name.lower()
    by_full = {i.lower(): i for i in ids}
    by_short = {i.rsplit("/", 1)[-1].lower(): i for i in ids}
    found: list[str] = []
    for table in (by_full, by_short):
        for key in difflib.get_close_matches(needle, list(table), n=limit, cutoff=0.6):
            if table[key] not in found:
                found.append(table[key])
    return found[:limit]


def not_found(name: str, ids: list[str] | None = None, lead: str | None = None) -> ModelNotFound:
    """``model_not_found`` with a next step: close cached names, ``list --all``, ``pull``."""
    ids = scan.list_repo_ids() if ids is None else ids
    close = suggestions(name, ids)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    pull_name = name if "/" in name else f"{config.MLX_COMMUNITY_ORG}/{name}"
    lead = lead or f"Model '{name}' not found in the cache."
    return ModelNotFound(f"{lead}{hint} 'mlxk list --all' shows "
                         f"every cached model; 'mlxk pull {pull_name}' downloads one.",
                         suggestions=close)


def select_commit(repo_id: str, prefix: str, root: Path | None = None) -> str:
    commits = scan.list_commits(repo_id, root)
    hits = [c for c in commits if c.startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise HashNotFound(f"No cached revision of '{repo_id}' starts with '{prefix}'",
                           available_hashes=commits)
    raise AmbiguousMatch(f"Revision prefix '{prefix}' matches {len(hits)} revisions of '{repo_id}'",
                         matches=hits)


def default_commit(repo_id: str, root: Path | None = None) -> str | None:
    """``refs/main`` when it names an existing snapshot, else the newest snapshot."""
    commits = scan.list_commits(repo_id, root)
    ref = layout.refs_dir(repo_id, root) / "main"
    try:
        main = ref.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        main = None
    if main and main in commits:
        return main
    if not commits:
        return main or None
    snaps = layout.snapshots_dir(repo_id, root)
    return max(commits, key=lambda c: _mtime(snaps / c))


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _looks_local(ref: str) -> bool:
    """``dir/model`` naming a model folder below the working directory."""
    return "/" in ref and (Path(ref) / "config.json").is_file()


def resolve(ref: str, root: Path | None = None, local_dirs: bool = True) -> ResolvedModel:
    """Resolve a user's model reference against the cache (or a local directory).

    ``local_dirs=False`` (the server): a name never means a folder on disk.
    """
    if ref is None or not str(ref).strip():
        raise ValidationError("Model name must not be empty")
    ref = str(ref).strip()
    if is_explicit_path(ref):
        return _local(ref)
    name, rev = split_revision(ref)
    validate_name(name)
    try:
        repo_id, exact = find_repo(name, root)
    except (ModelNotFound, AmbiguousMatch):
        if local_dirs and rev is None and _looks_local(ref):
            return _local(ref)
        raise
    if not exact and local_dirs and rev is None and _looks_local(ref):
        return _local(ref)   # ``models/tiny`` is that folder here, not a cache substring
    if rev is not None:
        commit: str | None = select_commit(repo_id, rev, root)
    else:
        commit = default_commit(repo_id, root)
    snap = layout.snapshots_dir(repo_id, root) / commit if commit else layout.repo_dir(repo_id, root)
    return ResolvedModel(repo_id, repo_id, commit, snap, cached=True, exact=exact,
                         revision_explicit=rev is not None)
