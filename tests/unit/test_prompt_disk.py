"""The on-disk prefix store: real mlx KV caches written as safetensors, read back by a new index."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

mx = pytest.importorskip("mlx.core")

from mlx_lm.models.cache import KVCache  # noqa: E402

from mlxk.engine import prompt_disk  # noqa: E402
from mlxk.engine.prompt_disk import DiskPromptCache  # noqa: E402

N = prompt_disk.MIN_TOKENS + 20


def kv(n: int, layers: int = 2) -> list[KVCache]:
    caches = []
    for i in range(layers):
        c = KVCache()
        c.update_and_fetch(mx.full((1, 2, n, 4), float(i + 1)), mx.full((1, 2, n, 4), float(-i)))
        caches.append(c)
    mx.eval([c.state for c in caches])
    return caches


def test_saved_prefix_is_found_by_a_new_index_and_trimmed(tmp_path: Path) -> None:
    tokens = list(range(N))
    DiskPromptCache(tmp_path, "m@rev", 1 << 30).save(tokens, kv(N))
    again = DiskPromptCache(tmp_path, "m@rev", 1 << 30)
    assert len(again) == 1
    # a prompt sharing the first N - 5 tokens: the entry is trimmed to them
    cache, n = again.lookup([*tokens[:N - 5], 9999, 9998])
    assert n == N - 5 and cache[0].offset == N - 5
    assert again.served_tokens == N - 5
    # the same prompt: all but its last token (something must be left to feed)
    cache, n = again.lookup(tokens)
    assert n == N - 1
    assert float(cache[1].state[0][0, 0, 0, 0]) == 2.0
    # too short a common prefix, or nothing in common
    assert again.lookup([*tokens[:prompt_disk.MIN_TOKENS - 1], 7]) == (None, 0)
    assert again.lookup([5000, 5001]) == (None, 0)


def test_short_prefixes_are_not_written(tmp_path: Path) -> None:
    DiskPromptCache(tmp_path, "m@rev", 1 << 30).save(list(range(10)), kv(10))
    assert not list(tmp_path.glob("*.safetensors"))


def test_truncated_and_foreign_files_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    DiskPromptCache(tmp_path, "m@rev", 1 << 30).save(list(range(N)), kv(N))
    DiskPromptCache(tmp_path, "other@rev", 1 << 30).save(list(range(1, N + 1)), kv(N))
    files = sorted(tmp_path.glob("*.safetensors"))
    assert len(files) == 2
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    mine = DiskPromptCache(tmp_path, "m@rev", 1 << 30)
    assert len(mine) == 1  # the other model's file is foreign, the junk one unreadable
    path = next(iter(mine._entries))
    path.write_bytes(path.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="mlxk.engine.prompt_disk"):
        fresh = DiskPromptCache(tmp_path, "m@rev", 1 << 30)
    assert len(fresh) == 0
    assert "skipping unreadable file" in caplog.text and path.name in caplog.text
    assert fresh.lookup(list(range(N))) == (None, 0)


def test_longer_entry_replaces_its_prefix_and_lru_evicts_by_bytes(tmp_path: Path) -> None:
    store = DiskPromptCache(tmp_path, "m@rev", 1 << 30)
    store.save(list(range(N)), kv(N))
    store.save(list(range(N + 10)), kv(N + 10))  # extends the first: the first goes
    assert len(store) == 1
    one = store.nbytes
    store.max_bytes = int(one * 2.5)
    store.save(list(range(1000, 1000 + N + 10)), kv(N + 10))
    store.lookup(list(range(N + 10)))               # touch the first one
    store.save(list(range(2000, 2000 + N + 10)), kv(N + 10))
    kept = sorted(e.tokens[0] for e in store._entries.values())
    assert kept == [0, 2000]
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
