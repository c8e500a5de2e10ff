"""File integrity of one revision (contract section 5). Read-only.

``check(repo, revision)`` returns the problems in a fixed order (the first one
is the ``reason``); ``verify_digests`` recomputes blob digests in parallel.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

from mlxk.cache.safetensors import HeaderError, read_header
from mlxk.cache.scan import CachedFile, CachedRepo, Revision

LFS_POINTER_PREFIX = b"version https://git-lfs"
LFS_POINTER_MIN_BYTES = 100
LFS_POINTER_MAX_BYTES = 300  # a pointer is 126-140 bytes; larger files need no open()
SHARD_RE = re.compile(r"-\d{5}-of-\d{5}\.(safetensors|bin)$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "tiktoken.model", "qwen.tiktoken", "tokenizer.tiktoken")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".npz", ".pt", ".pth")


def readable_files(rev: Revision) -> dict[str, str]:
    """Files whose link resolves inside the repo: name -> path to read."""
    return {f.name: f.real for f in rev.files if f.ok}


def _weights(names: Iterable[str]) -> list[str]:
    return [n for n in names if n.endswith(WEIGHT_SUFFIXES) and "training_args" not in n
            and not n.startswith(("optimizer", "scheduler"))]


def _is_lfs_pointer(f: CachedFile) -> bool:
    """A Git LFS pointer (``version https://git-lfs...\noid sha256:...\nsize N``) is ~130 bytes."""
    if not f.ok or not LFS_POINTER_MIN_BYTES <= f.size_bytes <= LFS_POINTER_MAX_BYTES:
        return False
    try:
        with open(f.real, "rb") as fh:
            return fh.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def partial_revisions(repo: CachedRepo) -> set[str]:
    """Revisions an ``.incomplete`` blob belongs to: the default one and the newest snapshot.

    huggingface_hub writes ``refs/main`` before it downloads, and creates the
    snapshot folder of the revision being fetched, so these are the candidates.
    """
    if not repo.incomplete_blobs:
        return set()
    out = {r.commit for r in repo.revisions[:1]}
    if repo.default_revision is not None:
        out.add(repo.default_revision.commit)
    return out


def check(repo: CachedRepo, rev: Revision | None, config_error: str | None = None,
          text_model: bool = True, config_parsed: bool = False) -> list[str]:
    """All integrity problems of ``rev`` (the selected revision of ``repo``), first = reason.

    ``config_error`` / ``config_parsed`` pass on what the caller already learned
    from reading config.json, so it is not parsed twice.
    """
    problems: list[str] = []
    is_default = rev is None or (repo.default_revision is not None
                                 and rev.commit == repo.default_revision.commit)
    if is_default:
        problems.extend(repo.problems)
    if rev is None:
        return problems or ["no snapshots"]
    for f in rev.files:
        if f.outside:
            problems.append(f"symlink points outside the cache: {f.name}")
        elif not f.exists:
            problems.append(f"broken symlink: {f.name}")
    if rev.commit in partial_revisions(repo):
        n = len(repo.incomplete_blobs)
        problems.append(f"partial download: {n} incomplete blob{'s' if n != 1 else ''}")
    files = {f.name: f for f in rev.files if f.ok}
    names = set(files)
    weights = _weights(names)
    gguf_only = any(w.lower().endswith(".gguf") for w in weights) and not any(
        w.endswith(".safetensors") for w in weights)
    for f in rev.files:
        if _is_lfs_pointer(f):
            problems.append(f"LFS pointer instead of file: {f.name}")
    if not gguf_only:
        if "config.json" not in files:
            problems.append("config.json missing")
        else:
            if not config_parsed:
                problems.extend(_config_problem(files["config.json"], config_error))
    problems.extend(_weight_problems(files, weights))
    if text_model and not gguf_only and weights and not any(t in names for t in TOKENIZER_FILES):
        problems.append("tokenizer files missing")
    return _dedupe(problems)


IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def vision_problems(names: set[str] | dict, cfg: dict | None, has_chat_template: bool) -> list[str]:
    """What a vision model needs besides weights: an image processor config and a chat
    template (it places the image tokens)."""
    if not (cfg and cfg.get("vision_config")):
        return []
    problems = []
    if not any(n in names for n in IMAGE_PROCESSOR_FILES):
        problems.append("vision model without an image processor config (preprocessor_config.json)")
    if not has_chat_template:
        problems.append("vision model without a chat template")
    return problems


def _config_problem(f: CachedFile, known: str | None) -> list[str]:
    if known is not None:
        return [f"config.json {'unreadable' if known == 'missing' else known}"]
    if f.size_bytes == 0:
        return ["config.json empty"]
    try:
        with open(f.real, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError, UnicodeDecodeError):
        return ["config.json invalid"]
    return [] if isinstance(data, dict) else ["config.json invalid"]


def _weight_problems(files: dict[str, CachedFile], weights: list[str]) -> list[str]:
    problems: list[str] = []
    if not weights:
        return ["no weights found"]
    indexed: set[str] = set()
    for name in sorted(n for n in files if n.endswith(".index.json")):
        try:
            with open(files[name].real, "rb") as fh:
                idx = json.loads(fh.read())
            shards = set((idx.get("weight_map") or {}).values())
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            problems.append(f"invalid index: {name}")
            continue
        folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        for shard in sorted(shards):
            full = folder + str(shard)
            indexed.add(full)
            if full not in files:
                problems.append(f"missing shard: {full} (named in {name})")
            elif files[full].size_bytes == 0:
                problems.append(f"empty shard: {full}")
    unindexed = sorted(w for w in weights if SHARD_RE.search(w) and w not in indexed)
    if unindexed:
        problems.append(f"sharded weights without index: {unindexed[0]}")
    for name in sorted(w for w in weights if w.endswith(".safetensors")):
        f = files[name]
        if _is_lfs_pointer(f):
            continue
        try:
            header = read_header(f.real)
        except HeaderError as exc:
            problems.append(f"invalid safetensors header: {name} ({exc})")
            continue
        if header.actual_size != header.expected_size:
            word = "truncated" if header.truncated else "oversized"
            problems.append(f"{word} safetensors: {name} ({header.actual_size} bytes, "
                            f"header says {header.expected_size})")
    return problems


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


# -- --verify -------------------------------------------------------------------

def _digest(path: str, lfs: bool) -> str:
    import hashlib

    if lfs:
        h = hashlib.sha256()
    else:
        h = hashlib.sha1()
        h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _verify_one(f: CachedFile) -> str | None:
    assert f.sblob is not None
    expected = os.path.basename(f.sblob)
    lfs = len(expected) == 64
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", expected):
        return None  # not a digest-named blob (e.g. copied by another tool): nothing to compare
    try:
        actual = _digest(f.sblob, lfs)
    except OSError as exc:
        return f"unreadable blob for {f.name}: {exc.strerror}"
    if actual != expected:
        return f"digest mismatch: {f.name} ({'sha256' if lfs else 'git sha1'} {actual[:12]}, blob {expected[:12]})"
    return None


def verify_digests(rev: Revision, workers: int | None = None) -> list[str]:
    """Recompute each blob's digest of one revision; see ``verify_revisions``."""
    return verify_revisions([rev], workers)[0]


def verify_revisions(revs: list[Revision], workers: int | None = None) -> list[list[str]]:
    """Recompute blob digests (sha256 for 64-hex names, git blob sha1 for 40-hex) in parallel.

    One thread pool over every blob of every revision; hashlib releases the GIL
    on large buffers, so the threads use every core. Entirely offline.
    Returns the problems per revision, in order.
    """
    jobs: list[tuple[int, CachedFile]] = []
    for i, rev in enumerate(revs):
        seen: set[str] = set()
        for f in sorted(rev.files, key=lambda x: x.name):
            if f.ok and f.sblob is not None and f.sblob not in seen:
                seen.add(f.sblob)
                jobs.append((i, f))
    out: list[list[str]] = [[] for _ in revs]
    if not jobs:
        return out
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or min(8, os.cpu_count() or 2, len(jobs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (i, _), problem in zip(jobs, pool.map(lambda j: _verify_one(j[1]), jobs), strict=True):
            if problem:
                out[i].append(problem)
    return out
