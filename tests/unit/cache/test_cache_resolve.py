"""Model references, contract section 3."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support import cache_factory as cf

from mlxk.cache.resolve import resolve, validate_name
from mlxk.errors import AmbiguousMatch, HashNotFound, ModelNotFound, ValidationError


@pytest.fixture
def cache(hub_cache: Path) -> Path:
    for name in ("mlx-community/Qwen3-4B-4bit", "mlx-community/Qwen3-8B-4bit", "org/Llama-3-8B",
                 "other/Phi-3-mini"):
        cf.add_repo(hub_cache, name, {"config.json": cf.config_json()})
    return hub_cache


@pytest.mark.parametrize("bad", ["", "   ", "a" * 97, "../etc", "org/../x", "org\\name", "/abs/name"[1:] + "/",
                                 "org//name", "/org", "a/b/c", "org--x/name"])
def test_validate_rejects(bad: str) -> None:
    with pytest.raises(ValidationError):
        validate_name(bad)


def test_validate_accepts_normal_names() -> None:
    assert validate_name("mlx-community/Qwen3-4B-4bit") == "mlx-community/Qwen3-4B-4bit"
    assert validate_name("a" * 96) == "a" * 96


def test_exact_wins(cache: Path) -> None:
    r = resolve("org/Llama-3-8B")
    assert r.repo_id == "org/Llama-3-8B" and r.exact and r.cached and r.commit
    assert r.path == cache / "models--org--Llama-3-8B" / "snapshots" / r.commit


def test_short_name_expands_to_mlx_community(cache: Path) -> None:
    r = resolve("Qwen3-4B-4bit")
    assert r.name == "mlx-community/Qwen3-4B-4bit" and r.exact


def test_fuzzy_single_hit_is_not_exact(cache: Path) -> None:
    r = resolve("phi-3")
    assert r.name == "other/Phi-3-mini" and not r.exact


def test_ambiguous_lists_sorted_matches(cache: Path) -> None:
    with pytest.raises(AmbiguousMatch) as info:
        resolve("qwen3")
    assert info.value.extra["matches"] == ["mlx-community/Qwen3-4B-4bit", "mlx-community/Qwen3-8B-4bit"]


def test_not_found(cache: Path) -> None:
    with pytest.raises(ModelNotFound):
        resolve("gemma")


def test_hash_prefix_selects_revision(hub_cache: Path, two_revisions) -> None:
    repo, old, new = two_revisions
    assert resolve(f"{repo}@{old[:4]}").commit == old
    assert resolve(f"{repo}@{old}").revision_explicit
    assert resolve("Two-Revs-4bit").commit == new
    with pytest.raises(HashNotFound) as info:
        resolve(f"{repo}@cafe")
    assert sorted(info.value.extra["available_hashes"]) == sorted([old, new])


@pytest.mark.parametrize("bad", ["org/x@abc", "org/x@zzzz", "org/x@"])
def test_hash_needs_four_hex(cache: Path, bad: str) -> None:
    with pytest.raises(ValidationError):
        resolve(bad)


def test_explicit_path_is_local_dir(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "mymodel"
    d.mkdir()
    (d / "config.json").write_text(cf.config_json())
    monkeypatch.chdir(tmp_path)
    r = resolve("./mymodel")
    assert not r.cached and r.path == d.resolve() and r.name == str(d.resolve()) and r.repo_id is None
    assert resolve(str(d)).path == d.resolve()
    with pytest.raises(ModelNotFound):
        resolve("./missing")


def test_bare_name_is_never_a_path(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "Llama"
    d.mkdir()
    (d / "config.json").write_text(cf.config_json())
    monkeypatch.chdir(tmp_path)
    assert resolve("Llama").name == "org/Llama-3-8B"
