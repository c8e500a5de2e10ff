"""`mlxk pull --dry-run` against the local Hub server: exact byte counts, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cli import run_mlxk
from tests.support.hub_repos import model_files
from tests.support.hub_server import FakeHub
from tests.support.schema import assert_valid

from mlxk.cache import layout

REPO = "org/dry-model"


def _all_paths(top: Path) -> list[str]:
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files)


def test_dry_run_counts_the_repo_and_writes_nothing(hub_server: FakeHub, isolated_env: Path) -> None:
    files = model_files(big_bytes=256 * 1024)
    files["copy-of-readme.md"] = files["README.md"]          # one blob, two paths: counted once
    sha = hub_server.add_repo(REPO, files)
    repo_bytes = sum(len(c) for name, c in files.items() if name != "copy-of-readme.md")
    before = _all_paths(isolated_env)
    r = run_mlxk("pull", REPO, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    assert data["download_status"] == "dry_run" and data["commit_hash"] == sha
    assert data["bytes_to_download"] == data["total_bytes"] == repo_bytes and data["bytes_downloaded"] == 0
    assert sorted(f["path"] for f in data["files"]) == sorted(files)
    assert not any(f["cached"] for f in data["files"]) and data["fits"] is True and data["free_bytes"] > 0
    assert _all_paths(isolated_env) == before and not layout.repo_dir(REPO).exists()

    human = run_mlxk("pull", REPO, "--dry-run")
    assert human.returncode == 0 and "to download" in human.stdout and "Would download" in human.stdout

    assert run_mlxk("pull", REPO, "--json").returncode == 0
    again = assert_valid(run_mlxk("pull", REPO, "--dry-run", "--json").json)["data"]
    assert again["bytes_to_download"] == 0 and again["total_bytes"] == repo_bytes
    assert all(f["cached"] for f in again["files"])


def test_dry_run_of_a_missing_repo_fails_like_pull(hub_server: FakeHub, isolated_env: Path) -> None:
    before = _all_paths(isolated_env)
    r = run_mlxk("pull", "org/not-there", "--dry-run", "--json")
    assert r.returncode == 1 and assert_valid(r.json)["status"] == "error"
    assert _all_paths(isolated_env) == before
