"""`mlxk convert --quantize` of a float HF checkpoint: mlx-lm's tensors, a proper cache entry, refusals.

The checkpoint is the tiny random-weight llama saved as a bfloat16 PyTorch-style checkpoint
(tests/support/tiny_checkpoint.py); the reference is ``mlx_lm.convert`` run on the same folder
with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.hub_repos import tree_snapshot
from tests.support.schema import assert_valid
from tests.support.tiny_checkpoint import TINY_HF_REPO_ID, build_tiny_checkpoint

from mlxk.cache.importer import import_directory

pytestmark = pytest.mark.slow
NEW = "me/tiny-llama-4bit"
GREEDY = ("Hello", "--temperature", "0", "--max-tokens", "6", "--json")
# Random weights answer noise, often the same token again and again; a seeded sample tells
# even near weights apart (the float checkpoint and its 4-bit version differ here).
SAMPLED = ("Hello", "--temperature", "1", "--seed", "7", "--max-tokens", "12", "--json")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama-hf")


@pytest.fixture(scope="module")
def reference(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``mlx_lm.convert --quantize --q-bits 4 --q-group-size 64`` writes for the checkpoint."""
    from mlx_lm.convert import convert

    out = tmp_path_factory.mktemp("ref") / "mlx_lm"
    convert(str(checkpoint), str(out), quantize=True, q_bits=4, q_group_size=64)
    return out


@pytest.fixture
def cached_checkpoint(checkpoint: Path, hub_cache: Path) -> str:
    import_directory(checkpoint, TINY_HF_REPO_ID, root=hub_cache)
    return TINY_HF_REPO_ID


def _tensors(folder: Path) -> dict:
    import mlx.core as mx

    out: dict = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(mx.load(str(f)))
    return out


def _answer(model: str, how: tuple[str, ...]) -> dict:
    r = run_mlxk("run", model, *how)
    assert r.returncode == 0, r.stderr
    return r.json["data"]


def test_quantized_checkpoint_is_mlx_lm_s_and_a_proper_cache_entry(
        cached_checkpoint: str, reference: Path, hub_cache: Path) -> None:
    import mlx.core as mx

    r = run_mlxk("convert", "tiny-llama-hf", "--quantize", "--q-bits", "4", "--q-group-size", "64",
                 "--cache", NEW, "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    source_commit = (hub_cache / "models--tiny-org--tiny-llama-hf" / "refs" / "main").read_text()
    assert data["source"] == TINY_HF_REPO_ID and data["source_kind"] == "cache"
    assert data["source_revision"] == source_commit
    assert (data["bits"], data["group_size"], data["mode"]) == (4, 64, "affine")
    assert data["destination"] == NEW and data["output"] is None and data["quantization"] == "4bit"
    assert 0 < data["size_after_bytes"] < data["size_before_bytes"]

    # The cache entry: refs/main -> the snapshot, every file a relative link to a blob named by its digest.
    repo = hub_cache / "models--me--tiny-llama-4bit"
    commit = (repo / "refs" / "main").read_text()
    assert commit == data["cache"]["commit"]
    snap = repo / "snapshots" / commit
    for link in snap.iterdir():
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        blob = link.resolve()
        assert blob.parent == (repo / "blobs").resolve()
        raw = blob.read_bytes()
        digest = (hashlib.sha256(raw).hexdigest() if link.suffix == ".safetensors"
                  else hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest())
        assert blob.name == digest, link.name
    assert not [p for p in hub_cache.iterdir() if p.name.startswith(".mlxk")]

    # Bit for bit what mlx_lm.convert writes with the same settings.
    ours, theirs = _tensors(snap), _tensors(reference)
    assert sorted(ours) == sorted(theirs) and "model.layers.0.self_attn.q_proj.scales" in ours
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype and mx.array_equal(ours[name], array).item(), name
    assert json.loads((snap / "config.json").read_text()) == json.loads((reference / "config.json").read_text())

    front = (snap / "README.md").read_text().split("---")[1]
    for line in ("library_name: mlx", f'base_model: "{TINY_HF_REPO_ID}"', "base_model_relation: quantized",
                 f'source_revision: "{source_commit}"', "bits: 4", "group_size: 64", "mode: affine"):
        assert line in front, line

    shown = run_mlxk("show", NEW, "--json").json["data"]["model"]
    assert (shown["quantization"], shown["health"], shown["framework"]) == ("4bit", "healthy", "MLX")
    assert shown["runtime_compatible"] is True
    assert run_mlxk("health", NEW).returncode == 0
    # The same text through `mlxk run` as the mlx_lm.convert output gives.
    for how in (GREEDY, SAMPLED):
        ours_answer, ref_answer = _answer(NEW, how), _answer(str(reference), how)
        assert ours_answer["usage"]["completion_tokens"] > 0
        assert (ours_answer["response"], ours_answer["usage"]) == (ref_answer["response"], ref_answer["usage"])


@pytest.mark.parametrize(("flags", "valid"), [
    (("--quantize", "--q-bits", "7"), "valid bits: 2, 3, 4, 5, 6, 8"),
    (("--quantize", "--q-group-size", "48"), "valid group sizes: 32, 64, 128"),
    (("--quantize", "--q-mode", "mxfp4", "--q-group-size", "64"), "valid group sizes: 32"),
    (("--quantize", "--q-mode", "nvfp4", "--q-bits", "8"), "valid bits: 4"),
    (("--q-bits", "4"), "--q-bits needs --quantize"),
])
def test_impossible_settings_leave_the_cache_unchanged(cached_checkpoint: str, hub_cache: Path,
                                                       flags: tuple[str, ...], valid: str) -> None:
    before = tree_snapshot(hub_cache)
    r = run_mlxk("convert", cached_checkpoint, *flags, "--cache", NEW, "--json")
    assert r.returncode == 1
    assert r.json["error"]["type"] == "ValidationError" and valid in r.json["error"]["message"]
    assert tree_snapshot(hub_cache) == before


def test_failed_conversion_leaves_nothing(checkpoint: Path, tmp_path: Path, hub_cache: Path) -> None:
    """mlx-lm fails after the work started (a tensor missing): no cache entry, no staging folder."""
    import mlx.core as mx

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in checkpoint.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = mx.load(str(checkpoint / "model.safetensors"))
    del weights["model.layers.1.mlp.down_proj.weight"]
    mx.save_safetensors(str(broken / "model.safetensors"), weights, metadata={"format": "pt"})
    before = tree_snapshot(hub_cache)
    r = run_mlxk("convert", str(broken), "-q", "--cache", NEW)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "convert: Error:" in r.stderr
    assert tree_snapshot(hub_cache) == before
    r = run_mlxk("convert", str(broken), "-q", "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["broken", "hf_home"])


def test_local_folder_to_a_directory(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny-8bit"
    r = run_mlxk("convert", str(checkpoint), "--quantize", "--q-bits", "8", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    assert data["source_kind"] == "folder" and data["source_revision"] is None
    assert data["destination"] == str(out) and data["cache"] is None
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 8
    assert "base_model:" not in (out / "README.md").read_text()
    # An existing target is refused before any work, then replaced with --force.
    again = run_mlxk("convert", str(checkpoint), "-q", "-o", str(out))
    assert again.returncode == 1 and "not empty" in again.stderr
    forced = run_mlxk("convert", str(checkpoint), "-o", str(out), "--dtype", "float16", "-f")
    assert forced.returncode == 0, forced.stderr
    assert "(float16, 20 tensors" in forced.stdout and "Loading" not in forced.stdout
    assert "Converting" in forced.stderr and "Loading" in forced.stderr  # progress: stderr only
    assert "quantization" not in json.loads((out / "config.json").read_text())


def test_refusals_before_any_work(tmp_path: Path, cached_checkpoint: str, hub_cache: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    r = run_mlxk("convert", str(gguf), "--quantize", "-o", str(tmp_path / "out"), "--json")
    assert r.returncode == 1 and "GGUF tensors keep their own quantization" in r.json["error"]["message"]
    missing = run_mlxk("convert", str(tmp_path / "nope.gguf"), "-o", str(tmp_path / "out"))
    assert missing.returncode == 1 and "GGUF file not found" in missing.stderr
    assert "Converting" not in missing.stderr
    before = tree_snapshot(hub_cache)
    taken = run_mlxk("convert", cached_checkpoint, "-q", "--cache", cached_checkpoint, "--json")
    assert taken.returncode == 1 and "already in the cache" in taken.json["error"]["message"]
    both = run_mlxk("convert", cached_checkpoint, str(tmp_path / "a"), "-o", str(tmp_path / "b"))
    assert both.returncode == 1 and "output directory once" in both.stderr
    (tmp_path / "folder").mkdir()
    bare = run_mlxk("convert", "folder", "-q", "-o", "out", cwd=tmp_path)
    assert bare.returncode == 1 and "for the local folder write ./folder" in bare.stderr
    assert tree_snapshot(hub_cache) == before and not (tmp_path / "out").exists()
