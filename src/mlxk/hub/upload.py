"""Local side of ``push``: what a folder holds, whether it is a sound model, how it differs from the Hub.

No network here (``client.py`` does that), so ``push --check-only`` runs offline.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from mlxk.hub.client import RemoteEntry

IGNORED_DIRS = {".git", ".cache", "__pycache__", ".ipynb_checkpoints"}
IGNORED_FILES = {".DS_Store"}
LFS_POINTER_PREFIX = b"version https://git-lfs"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def ignore_patterns() -> list[str]:
    """The same exclusions as ``list_files``, as huggingface_hub upload patterns."""
    pats = []
    for d in sorted(IGNORED_DIRS):
        pats += [f"{d}/*", f"**/{d}/*"]
    for f in sorted(IGNORED_FILES):
        pats += [f, f"**/{f}"]
    return pats


@dataclass(frozen=True)
class LocalFile:
    path: str
    size: int
    git_sha1: str
    sha256: str


@dataclass
class Checks:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "warnings": self.warnings}


def _digests(path: Path) -> tuple[str, str]:
    size = path.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def list_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part in IGNORED_DIRS for part in rel.parts[:-1]) or rel.parts[0] in IGNORED_DIRS:
            continue
        if p.is_file() and p.name not in IGNORED_FILES:
            out.append(p)
    return out


def local_files(folder: Path) -> dict[str, LocalFile]:
    files = {}
    for p in list_files(folder):
        rel = p.relative_to(folder).as_posix()
        sha1, sha256 = _digests(p)
        files[rel] = LocalFile(rel, p.stat().st_size, sha1, sha256)
    return files


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size < 8:
        return f"truncated safetensors file: {path.name}"
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8 or n > 100_000_000:
            return f"invalid safetensors header: {path.name}"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return f"invalid safetensors header: {path.name}"
    end = max((v["data_offsets"][1] for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end != size:
        return f"safetensors size mismatch (truncated?): {path.name}"
    return None


def check_folder(folder: Path) -> Checks:
    """Is ``folder`` a model worth uploading? config, weights, index completeness, no LFS pointers."""
    c = Checks()
    files = {p.relative_to(folder).as_posix(): p for p in list_files(folder)}
    if not files:
        c.problems.append("folder is empty")
        return c
    cfg = files.get("config.json")
    if cfg is None:
        c.problems.append("config.json missing")
    else:
        try:
            if not isinstance(json.loads(cfg.read_text()), dict):
                c.problems.append("config.json is not a JSON object")
        except (ValueError, UnicodeDecodeError):
            c.problems.append("config.json is not valid JSON")
    for name, p in files.items():
        if p.stat().st_size < 512:
            with p.open("rb") as f:
                if f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX:
                    c.problems.append(f"LFS pointer instead of file: {name}")
    shards = sorted(n for n in files if n.endswith(".safetensors"))
    ggufs = [n for n in files if n.endswith(".gguf")]
    if not shards and not ggufs:
        c.problems.append("no weights (*.safetensors or *.gguf)")
    indexes = [n for n in files if n.endswith(".safetensors.index.json")]
    indexed: set[str] = set()
    for idx in indexes:
        try:
            weight_map = json.loads(files[idx].read_text()).get("weight_map", {})
        except (ValueError, AttributeError):
            c.problems.append(f"invalid index: {idx}")
            continue
        prefix = idx.rsplit("/", 1)[0] + "/" if "/" in idx else ""
        for shard in sorted(set(weight_map.values())):
            indexed.add(prefix + shard)
            p = files.get(prefix + shard)
            if p is None:
                c.problems.append(f"index names a missing shard: {shard}")
            elif p.stat().st_size == 0:
                c.problems.append(f"empty shard: {shard}")
    if len(shards) > 1 and not indexes:
        c.problems.append(f"{len(shards)} safetensors shards but no index file")
    for name in shards:
        problem = _safetensors_problem(files[name])
        if problem:
            c.problems.append(problem)
    if shards and not any(t in files for t in TOKENIZER_FILES):
        c.warnings.append("no tokenizer files")
    if "README.md" not in files:
        c.warnings.append("no README.md (model card)")
    return c


def diff(local: dict[str, LocalFile], remote: dict[str, RemoteEntry] | None) -> dict:
    """added / changed / deleted relative to the remote (``.gitattributes`` is the Hub's own)."""
    remote = remote or {}
    added, changed, unchanged = [], [], 0
    for path, f in sorted(local.items()):
        r = remote.get(path)
        if r is None:
            added.append({"path": path, "size_bytes": f.size})
        elif (r.sha256 or r.blob_id) != (f.sha256 if r.sha256 else f.git_sha1):
            changed.append({"path": path, "size_bytes": f.size})
        else:
            unchanged += 1
    deleted = [{"path": p, "size_bytes": r.size} for p, r in sorted(remote.items())
               if p not in local and p != ".gitattributes"]
    return {"added": added, "changed": changed, "deleted": deleted, "unchanged": unchanged}
