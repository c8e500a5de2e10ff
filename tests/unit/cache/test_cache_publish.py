"""``publish_directory`` and ``quant_settings``: the two pieces ``convert --cache`` relies on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support.hub_repos import tree_snapshot

from mlxk.cache import importer, runtime
from mlxk.cache.resolve import resolve
from mlxk.errors import ValidationError


def _model(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(text.encode() * 100)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "note.txt").write_text(text)
    return folder


def test_publish_creates_the_whole_repo_at_once(tmp_path: Path, hub_cache: Path) -> None:
    src = _model(tmp_path / "a", "one")
    commit = importer.publish_directory(src, "me/model", root=hub_cache)
    r = resolve("me/model", root=hub_cache)
    assert r.commit == commit and (r.path / "sub" / "note.txt").read_text() == "one"
    assert os.readlink(r.path / "sub" / "note.txt").startswith("../../../blobs/")
    assert [p.name for p in hub_cache.iterdir()] == ["models--me--model"]  # no staging left
    assert src.is_dir()  # copied, not moved


def test_publish_refuses_an_existing_repo_unless_replace(tmp_path: Path, hub_cache: Path) -> None:
    first = importer.publish_directory(_model(tmp_path / "a", "one"), "me/model", root=hub_cache)
    before = tree_snapshot(hub_cache)
    with pytest.raises(ValidationError, match="already in the cache"):
        importer.publish_directory(_model(tmp_path / "b", "two"), "me/model", root=hub_cache)
    assert tree_snapshot(hub_cache) == before
    second = importer.publish_directory(tmp_path / "b", "me/model", root=hub_cache, replace=True,
                                        move=True)
    assert second != first and not (tmp_path / "b" / "model.safetensors").exists()
    repo = hub_cache / "models--me--model"
    assert (repo / "refs" / "main").read_text() == second
    assert sorted(p.name for p in (repo / "snapshots").iterdir()) == sorted([first, second])
    assert resolve("me/model", root=hub_cache).path.joinpath("sub", "note.txt").read_text() == "two"
    assert sorted(p.name for p in hub_cache.iterdir()) == ["models--me--model"]


def test_publish_failure_leaves_nothing(tmp_path: Path, hub_cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = _model(tmp_path / "a", "one")

    def broken_link(self: Path, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "symlink_to", broken_link)
    with pytest.raises(OSError, match="disk full"):
        importer.publish_directory(src, "me/model", root=hub_cache)
    assert list(hub_cache.iterdir()) == []


def test_quant_settings_are_exactly_what_mlx_quantizes_with() -> None:
    """Every accepted setting quantizes with mx.quantize; every refused one mlx rejects too
    (except affine 1-bit, which mlx can write but mlx-lm's loader does not read)."""
    import mlx.core as mx

    w = mx.ones((8, 128))
    for mode in runtime.QUANT_SETTINGS:
        for bits in range(1, 9):
            for group in (16, 32, 64, 128):
                try:
                    runtime.quant_settings(mode, bits, group)
                    ours = True
                except ValidationError:
                    ours = False
                try:
                    mx.eval(mx.quantize(w, group_size=group, bits=bits, mode=mode))
                    theirs = True
                except (ValueError, RuntimeError):
                    theirs = False
                if (mode, bits) == ("affine", 1):
                    assert not ours
                else:
                    assert ours == theirs, (mode, bits, group)
    assert runtime.quant_settings("affine", None, None) == (4, 64)
    assert runtime.quant_settings("mxfp8", None, None) == (8, 32)
    with pytest.raises(ValidationError, match="choose from affine, mxfp4, nvfp4, mxfp8"):
        runtime.quant_settings("int4", 4, 64)
