"""`mlxk list` / `mlxk show` as real processes against a real temporary cache."""

from __future__ import annotations

from tests.support import fixtures_cache as fc
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid


def test_list_json_validates_and_lists_everything(model_zoo, broken_model) -> None:
    repo_id, _, reason = broken_model
    r = run_mlxk("list", "--json")
    assert r.returncode == 0, r.stderr
    env = assert_valid(r.json)
    models = {m["name"]: m for m in env["data"]["models"]}
    assert set(models) == {*model_zoo, repo_id}
    assert models[repo_id]["health"] == "unhealthy" and models[repo_id]["reason"].startswith(reason)


def test_global_json_flag_before_command(chat_model) -> None:
    r = run_mlxk("--json", "list", "tiny")
    assert r.returncode == 0
    assert assert_valid(r.json)["data"]["count"] == 1


def test_list_human_shows_runnable_models_only(model_zoo) -> None:
    r = run_mlxk("list")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["Name", "Hash", "Size", "Modified", "Type"]
    assert any(line.startswith(fc.CHAT) for line in lines)
    assert not any(line.startswith((fc.GGUF, fc.UNSUPPORTED)) for line in lines)
    everything = run_mlxk("list", "--all").stdout
    assert fc.GGUF in everything and "Framework" in everything and "GGUF" in everything
    assert "Health" in run_mlxk("list", "--health").stdout.splitlines()[0]


def test_show_json_and_human(model_zoo) -> None:
    r = run_mlxk("show", "Tiny-Chat-4bit", "--json", "--files", "--config")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    assert data["model"]["name"] == fc.CHAT and data["files"] and data["config"]["model_type"] == "llama"
    human = run_mlxk("show", fc.CHAT)
    assert human.returncode == 0 and fc.CHAT in human.stdout and "Parameter count" in human.stdout


def test_show_errors_go_to_stderr_with_exit_1(model_zoo) -> None:
    r = run_mlxk("show", "Tiny")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("show: Error: ") and fc.CHAT in r.stderr  # ambiguous: matches listed
    j = run_mlxk("show", "Tiny", "--json")
    assert j.returncode == 1
    err = assert_valid(j.json)["error"]
    assert err["type"] == "ambiguous_match" and err["matches"] == sorted(err["matches"])
    for ref, kind in [("nothing-like-this", "model_not_found"), ("../etc/passwd", "model_not_found"),
                      ("org/../x", "ValidationError"), (f"{fc.CHAT}@deadbeef", "hash_not_found")]:
        j = run_mlxk("show", ref, "--json")
        assert j.returncode == 1 and assert_valid(j.json)["error"]["type"] == kind, (ref, j.stdout)


def test_usage_error_exit_2() -> None:
    r = run_mlxk("list", "--bogus")
    assert r.returncode == 2 and "Error" in r.stderr
    j = run_mlxk("list", "--bogus", "--json")
    assert j.returncode == 2 and assert_valid(j.json)["error"]["type"] == "CommandError"


def test_version_json() -> None:
    r = run_mlxk("--version", "--json")
    assert r.returncode == 0
    assert assert_valid(r.json)["data"]["cli_version"]
