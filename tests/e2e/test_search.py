"""`mlxk search` against the local fake Hub: matching MLX repos only, cached ones marked, offline."""

from __future__ import annotations

import pytest
from tests.support.cache_factory import LLAMA_CONFIG, add_repo
from tests.support.cli import run_mlxk
from tests.support.hub_server import FakeHub
from tests.support.schema import assert_valid

MLX_CARD = "---\nlibrary_name: mlx\ntags:\n- mlx\n---\n# model\n"
TAGGED_CARD = "---\nlibrary_name: transformers\ntags: [mlx, text-generation]\n---\n"
TORCH_CARD = "---\nlibrary_name: transformers\n---\n# upstream\n"


@pytest.fixture
def hub(hub_server: FakeHub) -> FakeHub:
    for day, (repo_id, card, downloads, likes) in enumerate([
        ("mlx-community/Qwen3-0.6B-4bit", MLX_CARD, 500, 30),
        ("mlx-community/Qwen3-4B-8bit", MLX_CARD, 900, 2),
        ("someone/qwen3-tiny-mlx", TAGGED_CARD, 10, 1),
        ("Qwen/Qwen3-0.6B", TORCH_CARD, 5000, 400),
        ("mlx-community/SmolLM2-135M-Instruct-4bit", MLX_CARD, 7000, 50),
    ], start=1):
        sha = hub_server.add_repo(repo_id, {"README.md": card, "config.json": "{}"})
        hub_server.repos[repo_id].commits[sha].date = f"2026-11-{day:02d}T10:00:00.000Z"
        hub_server.set_listing(repo_id, downloads=downloads, likes=likes)
    return hub_server


def test_search_lists_matching_mlx_models_and_marks_cached(hub: FakeHub, hub_cache) -> None:
    import json

    add_repo(hub_cache, "mlx-community/Qwen3-0.6B-4bit",
             {"config.json": json.dumps(LLAMA_CONFIG), "README.md": MLX_CARD})
    r = run_mlxk("search", "QWEN3", "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    assert [m["name"] for m in data["models"]] == [
        "mlx-community/Qwen3-4B-8bit", "mlx-community/Qwen3-0.6B-4bit", "someone/qwen3-tiny-mlx"]
    assert data["count"] == 3 and data["filter"] == "mlx" and data["sort"] == "downloads"
    by_name = {m["name"]: m for m in data["models"]}
    assert [n for n, m in by_name.items() if m["cached"]] == ["mlx-community/Qwen3-0.6B-4bit"]
    assert by_name["mlx-community/Qwen3-4B-8bit"]["downloads"] == 900
    assert all(m["mlx"] and m["last_modified"].endswith("Z") for m in data["models"])

    everything = run_mlxk("search", "qwen3", "--all", "--json").json["data"]
    assert everything["filter"] is None
    assert everything["models"][0]["name"] == "Qwen/Qwen3-0.6B" and everything["models"][0]["mlx"] is False
    liked = run_mlxk("search", "qwen3", "--sort", "likes", "--limit", "1", "--json").json["data"]
    assert [m["name"] for m in liked["models"]] == ["mlx-community/Qwen3-0.6B-4bit"]
    newest = run_mlxk("search", "qwen3", "--sort", "modified", "--json").json["data"]
    assert newest["models"][0]["name"] == "someone/qwen3-tiny-mlx"

    human = run_mlxk("search", "qwen3")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["Name", "Downloads", "Likes", "Modified", "Cached"]
    cached_line = next(line for line in lines if "Qwen3-0.6B-4bit" in line)
    assert cached_line.rstrip().endswith("yes")
    assert "Qwen/Qwen3-0.6B" not in human.stdout
    every_line = run_mlxk("search", "qwen3", "--all").stdout.splitlines()
    assert every_line[0].split()[:2] == ["Name", "MLX"]
    assert every_line[1].split()[:2] == ["Qwen/Qwen3-0.6B", "5,000"]  # not MLX: the column is empty
    none = run_mlxk("search", "no-such-thing")
    assert none.returncode == 0 and "No MLX models" in none.stdout


def test_search_sees_private_repos_with_hf_token(hub: FakeHub) -> None:
    hub.add_repo("me/qwen3-private-mlx", {"README.md": MLX_CARD}, private=True,
                 allowed_tokens={hub.token})
    anonymous = run_mlxk("search", "qwen3-private", "--json").json["data"]
    assert anonymous["models"] == []
    mine = run_mlxk("search", "qwen3-private", "--json", env={"HF_TOKEN": hub.token}).json["data"]
    assert [m["name"] for m in mine["models"]] == ["me/qwen3-private-mlx"]


def test_search_offline_or_refused_is_an_error(hub: FakeHub) -> None:
    r = run_mlxk("search", "qwen3", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1
    assert r.json["error"]["type"] == "offline" and "HF_HUB_OFFLINE" in r.json["error"]["message"]
    human = run_mlxk("search", "qwen3", env={"HF_HUB_OFFLINE": "1"})
    assert human.returncode == 1 and human.stderr.startswith("search: Error:")
    assert "Traceback" not in human.stderr and human.stdout == ""
    hub.fail("list_models", 401)
    refused = run_mlxk("search", "qwen3", "--json")
    assert refused.returncode == 1 and refused.json["error"]["type"] == "access_denied"
    assert "HF_TOKEN" in refused.json["error"]["message"] and refused.stderr == ""
    bad = run_mlxk("search", "qwen3", "--limit", "0", "--json")
    assert bad.returncode == 1 and bad.json["error"]["type"] == "ValidationError"
