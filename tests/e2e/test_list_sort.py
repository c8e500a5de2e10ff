"""`mlxk list --sort name|size|modified` on a real cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support import cache_factory as cf
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

from mlxk.errors import ValidationError
from mlxk.operations.models import sort_models

# name -> (extra weight bytes, mtime of every file)
REPOS = {"org/a-mid": (20_000, 2_000_000_000), "org/b-big": (90_000, 1_000_000_000),
         "org/c-small": (0, 1_900_000_000)}


@pytest.fixture
def three(hub_cache: Path) -> None:
    for name, (extra, mtime) in REPOS.items():
        commit = cf.add_repo(hub_cache, name, {**cf.mlx_model_files(), "extra.safetensors":
                                               cf.safetensors_bytes({"x": ("U8", [extra])}) if extra else b""})
        snap = cf.revision_dir(hub_cache, name, commit)
        for link in snap.iterdir():
            os.utime(os.path.realpath(link), (mtime, mtime))


@pytest.mark.parametrize(("key", "order"), [
    ("name", ["org/a-mid", "org/b-big", "org/c-small"]),
    ("size", ["org/b-big", "org/a-mid", "org/c-small"]),
    ("modified", ["org/a-mid", "org/c-small", "org/b-big"]),
])
def test_list_sort(three: None, key: str, order: list[str]) -> None:
    r = run_mlxk("list", "--sort", key, "--json", "--all")
    assert r.returncode == 0, r.stderr
    assert [m["name"] for m in assert_valid(r.json)["data"]["models"]] == order
    human = run_mlxk("list", "--sort", key, "--all").stdout
    assert [human.index(n) for n in order] == sorted(human.index(n) for n in order)


def test_bad_sort_key() -> None:
    r = run_mlxk("list", "--sort", "colour")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    with pytest.raises(ValidationError):
        sort_models([], "colour")
