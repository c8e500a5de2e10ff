"""``operations.convert`` refusals that happen before any work (in process, no mlx-lm run)."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from tests.support.hub_repos import tree_snapshot
from tests.support.tiny_checkpoint import build_tiny_checkpoint

from mlxk.errors import ExecutionError
from mlxk.operations.convert import ConvertOptions, convert

Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.mark.parametrize(("options", "need"), [
    (ConvertOptions(quantize=True, bits=4, group_size=64), 99_648 * 4.5 / 8),
    (ConvertOptions(dtype="float32"), 99_648 * 4),
    (ConvertOptions(), 99_648 * 2),  # the checkpoint's torch_dtype: bfloat16
])
def test_not_enough_disk_space_is_refused_before_any_work(
        checkpoint: Path, tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch,
        options: ConvertOptions, need: float) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(10**9, 10**9 - 1000, 1000))
    before = tree_snapshot(hub_cache)
    with pytest.raises(ExecutionError, match="Not enough disk space") as info:
        convert(str(checkpoint), cache_repo="me/tiny", options=options)
    assert info.value.extra["required_bytes"] == int(need)
    assert tree_snapshot(hub_cache) == before
    with pytest.raises(ExecutionError):
        convert(str(checkpoint), tmp_path / "out", options=options)
    assert not (tmp_path / "out").exists()
