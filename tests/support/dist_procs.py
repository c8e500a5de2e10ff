"""Fixtures and process helpers for the distributed tests (tiny models, rank pids)."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest

from tests.support.dist_models import build_tiny_model

TWO_LOCAL = "127.0.0.1,127.0.0.1"
MODELS = {
    "mlxk-test/dist-llama": ("llama", {}),            # tensor only
    "mlxk-test/dist-qwen2": ("qwen2", {}),            # tensor and pipeline
    "mlxk-test/dist-llama-3heads": ("llama", {"heads": 3, "kv_heads": 3, "hidden": 48}),
}


def _unshardable(out: Path) -> Path:
    """A gpt2-family model (mlx-lm runs it, but offers no sharding for it)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_ctx": 64, "n_embd": 32,
        "n_head": 2, "n_layer": 2, "n_positions": 64, "vocab_size": 64, "layer_norm_epsilon": 1e-5}))
    header = json.dumps({"wte.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    (out / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (out / name).write_text("{}")
    return out


@pytest.fixture(scope="session")
def dist_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dist_models")
    dirs = {}
    for repo, (family, kw) in MODELS.items():
        dirs[repo] = build_tiny_model(root / repo.split("/")[1], family, **kw)
    dirs["mlxk-test/dist-gpt2"] = _unshardable(root / "dist-gpt2")
    return dirs


@pytest.fixture
def dist_cache(isolated_env: Path, dist_model_dirs: dict[str, Path]) -> Path:
    """The test's HF_HOME with the tiny models imported as cache repos."""
    from mlxk.cache.importer import import_directory

    for repo, src in dist_model_dirs.items():
        import_directory(src, repo, root=isolated_env / "hub")
    return isolated_env


def descendants(pid: int) -> list[int]:
    """All live descendant pids of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rank_pids(root_pid: int, timeout: float = 120.0) -> dict[int, int]:
    """{rank: pid} of the rank workers below ``root_pid`` (waits until both exist)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for pid in descendants(root_pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mlxk.operations.rank" in cmd:
                for e in env:
                    if e.startswith(b"MLX_RANK="):
                        found[int(e.split(b"=", 1)[1])] = pid
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
