"""Fixtures for the cache area (loaded by tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import cache_factory as cf

CHAT = "mlx-community/Tiny-Chat-4bit"
BASE = "mlx-community/Tiny-Base-4bit"
TOOLS = "mlx-community/Tiny-Tools-4bit"
THINK = "acme/Tiny-Think-4bit"
EMBED = "sentence-transformers/tiny-bert"
GGUF = "someone/tiny-gguf"
PYTORCH = "plain-org/tiny-llama-hf"
BIN_ONLY = "plain-org/tiny-bin-only"
UNSUPPORTED = "weird-org/foo-model"


@pytest.fixture
def chat_model(hub_cache: Path) -> tuple[str, str]:
    """(repo_id, commit) of a healthy 4-bit MLX chat model."""
    return CHAT, cf.add_repo(hub_cache, CHAT, cf.mlx_model_files(chat=True))


@pytest.fixture
def model_zoo(hub_cache: Path) -> dict[str, str]:
    """One healthy repo of every kind the detector distinguishes: name -> commit."""
    zoo = {
        CHAT: cf.mlx_model_files(chat=True),
        BASE: cf.mlx_model_files(chat=False),
        TOOLS: cf.mlx_model_files(template=cf.TOOLS_TEMPLATE),
        THINK: cf.mlx_model_files(template=cf.THINK_TEMPLATE, shards=2),
        EMBED: cf.bert_files(),
        GGUF: cf.gguf_files(),
        PYTORCH: cf.mlx_model_files(chat=False, quant_bits=None, readme=False),
        BIN_ONLY: {"config.json": cf.config_json(), "pytorch_model.bin": b"\x80\x02" + bytes(64),
                   **cf.tokenizer_files(None)},
        UNSUPPORTED: cf.mlx_model_files(model_type="foo"),
    }
    return {name: cf.add_repo(hub_cache, name, files) for name, files in zoo.items()}


@pytest.fixture
def two_revisions(hub_cache: Path) -> tuple[str, str, str]:
    """A repo with two revisions sharing most blobs: (repo_id, old_commit, new_commit).

    ``refs/main`` points at the new one.
    """
    repo = "mlx-community/Two-Revs-4bit"
    files = cf.mlx_model_files()
    old = cf.add_repo(hub_cache, repo, files, commit="a" * 40)
    cfg = json.loads(files["config.json"])
    cfg["rope_theta"] = 20000.0
    new = cf.add_repo(hub_cache, repo, {**files, "config.json": json.dumps(cfg)}, commit="b" * 40)
    return repo, old, new


@pytest.fixture(params=sorted(cf.BROKEN_VARIANTS))
def broken_model(request: pytest.FixtureRequest, hub_cache: Path) -> tuple[str, str, str]:
    """Each broken variant in turn: (repo_id, commit, expected reason prefix)."""
    return cf.add_broken(hub_cache, request.param)
