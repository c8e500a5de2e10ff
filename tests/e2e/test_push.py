"""`mlxk push` (experimental) against the local fake Hub: gate, checks, dry run, real upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.hub_repos import model_files, write_folder
from tests.support.hub_server import FakeHub
from tests.support.schema import assert_valid

NAME = "push"
ON = {"MLXK2_ENABLE_EXPERIMENTAL_PUSH": "1"}


def push(*args: str, env: dict[str, str] | None = None):
    r = run_mlxk("push", *args, "--json", env={**ON, **(env or {})})
    assert_valid(r.json, NAME)
    return r


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "my-model", model_files(big_bytes=256 * 1024))


def test_gate_off_is_feature_disabled(folder: Path) -> None:
    for extra in ([], ["--check-only"], ["--dry-run"]):
        r = run_mlxk("push", str(folder), "me/model", "--private", *extra, "--json")
        assert r.returncode == 1
        assert r.json["error"]["type"] == "feature_disabled"
        assert "MLXK2_ENABLE_EXPERIMENTAL_PUSH" in r.json["error"]["message"]
    human = run_mlxk("push", str(folder), "me/model", "--private")
    assert human.returncode == 1 and human.stderr.startswith("push: Error: ")


def test_check_only_is_local(folder: Path) -> None:
    # HF_ENDPOINT points at a dead port here: any network use would fail.
    r = push(str(folder), "me/model", "--check-only")
    assert r.returncode == 0, r.stdout
    d = r.json["data"]
    assert d["action"] == "check_only" and d["checks"]["ok"] and d["changes"] is None
    assert d["files"] == len(model_files())

    (folder / "model-00002-of-00002.safetensors").unlink()
    (folder / "config.json").write_text("{not json")
    big = folder / "model-00001-of-00002.safetensors"
    big.write_bytes(big.read_bytes()[:-10])
    (folder / "extra.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    bad = push(str(folder), "me/model", "--check-only")
    assert bad.returncode == 1
    problems = bad.json["data"]["checks"]["problems"]
    assert "config.json is not valid JSON" in problems
    assert "index names a missing shard: model-00002-of-00002.safetensors" in problems
    assert "safetensors size mismatch (truncated?): model-00001-of-00002.safetensors" in problems
    assert "LFS pointer instead of file: extra.safetensors" in problems


def test_network_modes_need_private_and_token(hub_server: FakeHub, folder: Path) -> None:
    r = push(str(folder), "me/model", "--dry-run", env={"HF_TOKEN": hub_server.token})
    assert r.returncode == 2 and r.json["error"]["type"] == "CommandError"
    assert "--private" in r.json["error"]["message"]
    r = push(str(folder), "me/model", "--private", "--dry-run")
    assert r.returncode == 1 and r.json["error"]["type"] == "access_denied"
    assert "HF_TOKEN" in r.json["error"]["message"]
    hub_server.add_repo("me/public", {"config.json": b"{}"})
    r = push(str(folder), "me/public", "--private", env={"HF_TOKEN": hub_server.token})
    assert r.returncode == 1 and r.json["error"]["type"] == "access_denied"
    assert hub_server.files_at("me/public") == {"config.json": b"{}"}


def test_dry_run_then_real_push_lands_files(hub_server: FakeHub, folder: Path) -> None:
    env = {"HF_TOKEN": hub_server.token}
    dry = push(str(folder), "me/model", "--private", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout
    changes = dry.json["data"]["changes"]
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert [c["path"] for c in changes["added"]] == sorted(local)
    assert changes["changed"] == changes["deleted"] == []
    assert "me/model" not in hub_server.repos  # dry run changes nothing

    r = push(str(folder), "me/model", "--private", env=env)
    assert r.returncode == 0, r.stdout
    d = r.json["data"]
    assert d["action"] == "uploaded"
    assert d["commit_hash"] == hub_server.head_sha("me/model")
    assert d["url"] == f"{hub_server.url}/me/model/commit/{d['commit_hash']}"
    assert hub_server.repos["me/model"].private
    landed = hub_server.files_at("me/model")
    assert {k: v for k, v in landed.items() if k != ".gitattributes"} == \
        {k: v for k, v in local.items() if k != ".gitattributes"}

    # change one file, add one, delete one
    (folder / "README.md").write_text("# changed\n")
    (folder / "generation_config.json").write_text('{"temperature": 0.7}')
    (folder / "special_tokens_map.json").unlink()
    dry = push(str(folder), "me/model", "--private", "--dry-run", env=env)
    c = dry.json["data"]["changes"]
    assert [x["path"] for x in c["added"]] == ["generation_config.json"]
    assert [x["path"] for x in c["changed"]] == ["README.md"]
    assert [x["path"] for x in c["deleted"]] == ["special_tokens_map.json"]
    assert c["unchanged"] == len(local) - 2

    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # never uploaded
    commits_before = len(hub_server.repos["me/model"].commits)
    r = push(str(folder), "me/model", "--private", env=env)
    assert r.returncode == 0, r.stdout
    assert len(hub_server.repos["me/model"].commits) == commits_before + 1  # one commit
    landed = hub_server.files_at("me/model")
    assert not any(p.startswith(".git/") for p in landed)
    assert "special_tokens_map.json" not in landed
    assert landed["README.md"] == b"# changed\n"
    assert landed["generation_config.json"] == b'{"temperature": 0.7}'

    again = push(str(folder), "me/model", "--private", env=env)
    assert again.json["data"]["action"] == "no_changes"

    human = run_mlxk("push", str(folder), "me/model", "--private", "--dry-run", env={**ON, **env})
    assert human.returncode == 0 and "0 added, 0 changed, 0 deleted" in human.stdout
