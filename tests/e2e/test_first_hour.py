"""What a new user and a hostile user met in their first hour (issue 13): the CLI side.

Everything here stops before a model loads (or uses no model), so it is cheap.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import cache_factory as cf
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.schema import assert_valid

CHAT = "mlx-community/Tiny-Chat-4bit"


# -- start-up and discovery -------------------------------------------------------------

def test_empty_cache_says_where_it_looked(hub_cache: Path) -> None:
    r = run_mlxk("list")
    assert r.returncode == 0
    assert r.stdout.startswith(f"no models in {hub_cache}")
    j = run_mlxk("list", "--json")
    assert assert_valid(j.json)["data"] == {"models": [], "count": 0}


def test_hf_home_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    for argv in (("list",), ("health",), ("pull", "org/model")):
        r = run_mlxk(*argv, "--json", env={"HF_HOME": str(f)})
        assert r.returncode == 1, (argv, r.stdout)
        err = assert_valid(r.json)["error"]
        assert err["message"] == f"HF_HOME is not a directory: {f}", argv
    human = run_mlxk("list", env={"HF_HOME": str(f)})
    assert human.returncode == 1 and "HF_HOME is not a directory" in human.stderr


def test_health_pattern_matching_nothing_is_model_not_found(chat_model) -> None:
    r = run_mlxk("health", "nosuch", "--json")
    assert r.returncode == 1
    assert assert_valid(r.json)["error"]["type"] == "model_not_found"
    assert run_mlxk("health", "nosuch").returncode == 1
    assert run_mlxk("health", "tiny-chat").returncode == 0


def test_model_not_found_suggests_close_names_and_next_steps(chat_model) -> None:
    r = run_mlxk("show", "Tiny-Caht-4bit", "--json")
    assert r.returncode == 1
    err = assert_valid(r.json)["error"]
    assert err["type"] == "model_not_found" and err["suggestions"] == [CHAT]
    assert "Did you mean" in err["message"] and "mlxk list --all" in err["message"]
    assert "mlxk pull" in err["message"]
    human = run_mlxk("run", "Tiny-Caht-4bit", "hi")
    assert CHAT in human.stderr and human.returncode == 1


def test_path_looking_reference_prefers_the_local_folder(chat_model, tmp_path: Path) -> None:
    folder = tmp_path / "models" / "tiny-chat"
    folder.mkdir(parents=True)
    for name, content in cf.mlx_model_files(chat=False).items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    r = run_mlxk("show", "models/tiny-chat", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    model = assert_valid(r.json)["data"]["model"]
    assert model["cached"] is False and model["name"] == str(folder)
    # without the folder the same words are a cache substring
    r = run_mlxk("show", "models/tiny-chat", "--json")
    assert r.returncode == 1


# -- flags that silently did something else ---------------------------------------------

@pytest.mark.parametrize("argv", [("serve", "--dry-run"), ("run", CHAT, "hi", "--dry-run"),
                                  ("run", CHAT, "hi", "--parallel", "tensor"),
                                  ("serve", "--backend", "ring")])
def test_distributed_flags_without_hosts_are_usage_errors(chat_model, argv: tuple[str, ...]) -> None:
    r = run_mlxk(*argv, "--json", timeout=60)
    assert r.returncode == 2, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "CommandError" and "--hosts" in err["message"]


@pytest.mark.parametrize("argv,needle", [
    (("--api-key", ""), "--api-key"), (("--api-key", "   "), "--api-key"),
    (("--memory-budget", "-1"), "--memory-budget"), (("--memory-budget", "0"), "--memory-budget"),
])
def test_serve_refuses_blank_keys_and_bad_budgets_at_start(argv: tuple[str, ...], needle: str) -> None:
    r = run_mlxk("serve", *argv, "--json", "--port", "1", timeout=60)
    assert r.returncode == 1, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "ValidationError" and needle in err["message"]


def test_serve_help_shows_defaults_and_env() -> None:
    text = " ".join(run_mlxk("serve", "--help").stdout.split())
    for piece in ("(default 5m)", "(default 4194304)", "(default 15)", "$MLXK_HOST", "$MLXK_PORT"):
        assert piece in text, piece


def test_unknown_flag_shows_the_commands_usage() -> None:
    r = run_mlxk("list", "--jsn")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: mlxk list") and "--jsn" in r.stderr


# -- run input --------------------------------------------------------------------------

def test_stdin_that_is_not_utf8_is_a_clear_error(chat_model) -> None:
    for argv in (("run", CHAT, "-"), ("embed", "sentence-transformers/none", "-")):
        proc = subprocess.run(mlxk_argv(*argv, "--json"), input=b"caf\xe9\n", capture_output=True,
                              env=mlxk_env(), timeout=120)
        assert proc.returncode == 1, (argv, proc.stdout)
        err = json.loads(proc.stdout)["error"]
        assert err["type"] == "ValidationError" and "UTF-8" in err["message"], argv


def test_embed_without_text_is_a_usage_error(hub_cache: Path) -> None:
    repo = "sentence-transformers/tiny-bert"
    cf.add_repo(hub_cache, repo, cf.bert_files())
    proc = subprocess.run(mlxk_argv("embed", repo, "--json"), stdin=subprocess.DEVNULL,
                          capture_output=True, env=mlxk_env(), timeout=120)
    assert proc.returncode == 2, proc.stdout
    assert json.loads(proc.stdout)["error"]["type"] == "CommandError"


def test_convert_of_a_missing_file_says_nothing_before_the_error(tmp_path: Path) -> None:
    r = run_mlxk("convert", str(tmp_path / "nonexist.gguf"), str(tmp_path / "out"))
    assert r.returncode == 1
    assert r.stdout == "" and "Converting" not in r.stderr
    assert r.stderr.startswith("convert: Error: ")


# -- JSON output stays valid ------------------------------------------------------------

def test_json_is_valid_utf8_with_odd_folder_names(chat_model, hub_cache: Path) -> None:
    os.makedirs(os.fsencode(hub_cache) + b"/models--te\xffst--x/snapshots")
    for argv in (("list", "--json"), ("health", "--json"), ("list", "--all")):
        proc = subprocess.run(mlxk_argv(*argv), capture_output=True, env=mlxk_env(), timeout=120)
        text = proc.stdout.decode("utf-8")   # raises on invalid UTF-8
        assert "\ufffd" in text, argv
        if "--json" in argv:
            json.loads(text)


# -- pull ---------------------------------------------------------------------------------

def test_pull_of_a_cached_healthy_model_works_offline(chat_model) -> None:
    repo_id, commit = chat_model
    for env in ({"HF_HUB_OFFLINE": "1"}, {}):   # offline, then a Hub that refuses connections
        r = run_mlxk("pull", repo_id, "--json", env=env)
        assert r.returncode == 0, r.stdout
        data = assert_valid(r.json)["data"]
        assert data["download_status"] == "already_exists" and data["commit_hash"] == commit
        assert "newer revision" in data["message"]
    r = run_mlxk("pull", "mlx-community/not-cached", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    sock.close()


def test_pull_from_a_hub_that_never_answers_times_out(silent_hub: str) -> None:
    t0 = time.monotonic()
    r = run_mlxk("pull", "org/model", "--json", timeout=120,
                 env={"HF_ENDPOINT": silent_hub, "HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1"})
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "download_failed" and "Cannot reach the Hub" in err["message"]
    assert took < 60, took


# -- small things -------------------------------------------------------------------------

def test_health_json_fields_are_all_in_the_schema(chat_model) -> None:
    from mlxk.schemas import load_schema

    r = run_mlxk("health", "--json")
    data = assert_valid(r.json)["data"]
    schema = load_schema("health")
    common = schema["$defs"]["health_entry"]["properties"]
    top = schema["then"]["properties"]["data"]["properties"]
    assert set(data) <= set(top), set(data) - set(top)
    for entry in data["healthy"] + data["unhealthy"]:
        assert set(entry) <= set(common), set(entry) - set(common)


def test_show_reads_like_a_person_wrote_it(chat_model) -> None:
    text = run_mlxk("show", CHAT, "--files").stdout
    assert "Chat template" in text and "True" not in text and "False" not in text
    line = next(x for x in text.splitlines() if x.startswith("Chat template"))
    assert line.split()[-1] == "yes"
    params = next(x for x in text.splitlines() if x.startswith("Parameter count"))
    assert "," in params and "M)" in params
    assert any(x.startswith("Revisions") for x in text.splitlines())
    files = text.split("Files:\n", 1)[1].splitlines()
    size_ends = {len(x) - len(x.split()[-1]) for x in files}
    assert len(size_ends) == 1, files   # the type column starts at one position


def test_list_help_says_what_the_default_view_is() -> None:
    text = " ".join(run_mlxk("list", "--help").stdout.split())
    assert "runnable models" not in text and "By default" in text and "embed" in text
