"""Long prompt prefixes on disk (``serve --prompt-cache-dir``), found again after a restart.

Each entry is one safetensors file written by mlx-lm's ``save_prompt_cache``; its
metadata holds the tokens the KV state covers and an identity: the model (name and
revision), the mlx and mlx-lm versions and the cache layout. A file whose identity
differs (another model, another mlx) is foreign and ignored; one that cannot be read
(truncated, not safetensors) is skipped with a warning and never crashes the server.

The index is built at start from the files' headers only (JSON, a few KB), so a
large directory costs no array reads. ``lookup`` returns the entry sharing the longest
prefix with a prompt; ``save`` writes atomically (temp file + rename) and evicts the
least recently used files (touched on every hit; the files' mtimes carry it across restarts) beyond the byte budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("mlxk.engine.prompt_disk")

SUFFIX = ".safetensors"
MIN_TOKENS = 128          # shorter prefixes are cheap to recompute; not worth a file
_FORMAT = "mlxk-prompt-cache-1"


@dataclass
class DiskEntry:
    path: Path
    tokens: tuple[int, ...]
    nbytes: int
    used: float             # last use (the file's mtime across restarts)


def identity(model_id: str) -> dict[str, str]:
    """What a file must match to be used: the model and the versions that wrote it."""
    import mlx.core as mx
    import mlx_lm

    return {"format": _FORMAT, "model": model_id, "mlx": mx.__version__, "mlx_lm": mlx_lm.__version__}


def read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header, checked against the file's size (a truncated file fails)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or 8 + n > size:
            raise ValueError("header length out of range")
        header = json.loads(f.read(n))
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise ValueError(f"size {size} does not match the header ({8 + n + end})")
    return header


def _common(a: tuple[int, ...], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class DiskPromptCache:
    """The on-disk prefix store of one model (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str], model_id: str, max_bytes: int) -> None:
        self.root = Path(root)
        self.ident = identity(model_id)
        self.max_bytes = max_bytes
        self.served_tokens = 0          # prompt tokens served from disk (cumulative)
        self.root.mkdir(parents=True, exist_ok=True)
        self._entries: dict[Path, DiskEntry] = {}
        self._scan()

    # --- index ---------------------------------------------------------------------------
    def _scan(self) -> None:
        for path in sorted(self.root.glob(f"*{SUFFIX}")):
            try:
                meta = read_header(path).get("__metadata__", {})
                # save_prompt_cache flattens [metadata, classes, ...]: ours is under "0."
                if any(meta.get(f"0.{k}") != v for k, v in self.ident.items()):
                    continue  # another model or another mlx: not ours to use (nor to delete)
                tokens = tuple(json.loads(meta["0.mlxk_tokens"]))
            except Exception as exc:
                log.warning("prompt cache: skipping unreadable file %s (%s)", path.name, exc)
                continue
            st = path.stat()
            self._entries[path] = DiskEntry(path, tokens, st.st_size, st.st_mtime)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    # --- use -----------------------------------------------------------------------------
    def lookup(self, tokens: list[int]) -> tuple[Any, int]:
        """The KV state for the longest cached prefix of ``tokens`` (at most all but the last
        token, trimmed when the entry runs longer), and how many tokens it covers; ``(None, 0)``
        when nothing of at least ``MIN_TOKENS`` matches or the file fails to load."""
        best, best_n = None, 0
        for e in self._entries.values():
            n = min(_common(e.tokens, tokens), len(tokens) - 1)
            if n > best_n:
                best, best_n = e, n
        if best is None or best_n < MIN_TOKENS:
            return None, 0
        from mlx_lm.models.cache import can_trim_prompt_cache, load_prompt_cache, trim_prompt_cache

        try:
            cache = load_prompt_cache(str(best.path))
            extra = len(best.tokens) - best_n
            if extra and not can_trim_prompt_cache(cache):
                return None, 0
            if extra:
                trim_prompt_cache(cache, extra)
        except Exception as exc:
            log.warning("prompt cache: skipping unreadable file %s (%s)", best.path.name, exc)
            self._entries.pop(best.path, None)
            return None, 0
        self._touch(best)
        self.served_tokens += best_n
        return cache, best_n

    def save(self, tokens: list[int], cache: Any) -> None:
        """Write ``cache`` (covering ``tokens``) unless short or already covered; drop the
        entries it extends; evict beyond the byte budget. Errors are logged, not raised."""
        if len(tokens) < MIN_TOKENS or self.max_bytes <= 0:
            return
        key = tuple(tokens)
        if any(e.tokens[:len(key)] == key for e in self._entries.values()):
            return  # an entry covers this prefix already
        from mlx_lm.models.cache import save_prompt_cache

        digest = hashlib.sha256(json.dumps([self.ident, list(key)]).encode()).hexdigest()[:32]
        path = self.root / f"{digest}{SUFFIX}"
        tmp = self.root / f".{digest}.tmp{SUFFIX}"
        try:
            save_prompt_cache(str(tmp), cache, {**self.ident, "mlxk_tokens": json.dumps(list(key))})
            os.replace(tmp, path)
        except Exception as exc:
            log.warning("prompt cache: could not write %s (%s)", path.name, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        for old in [e for e in self._entries.values() if key[:len(e.tokens)] == e.tokens]:
            self._drop(old)
        entry = self._entries[path] = DiskEntry(path, key, path.stat().st_size, 0.0)
        self._touch(entry)
        self._evict()

    def _touch(self, entry: DiskEntry) -> None:
        # strictly increasing, even where the file system's clock is coarse
        entry.used = max(time.time(), max((e.used for e in self._entries.values()), default=0) + 1e-6)
        with contextlib.suppress(OSError):
            os.utime(entry.path, (entry.used, entry.used))

    def _drop(self, entry: DiskEntry) -> None:
        self._entries.pop(entry.path, None)
        with contextlib.suppress(OSError):
            entry.path.unlink()

    def _evict(self) -> None:
        while self._entries and self.nbytes > self.max_bytes:
            self._drop(min(self._entries.values(), key=lambda e: e.used))
