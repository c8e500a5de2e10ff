"""`mlxk ps`, `load`, `stop` as real processes against a real `mlxk serve` with two real tiny models."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, free_port, module_hf_home, start_serve
from tests.support.import_probe import HEAVY, imported_modules
from tests.support.schema import assert_valid

TINY_B = "mlxk-test/tiny-llama-b"
KEY = "lifecycle-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tiny = tiny_llama_dir()
    home = module_hf_home(tmp_path_factory, {TINY_REPO_ID: tiny, TINY_B: tiny})
    sp = start_serve(home, "--keep-alive", "10m", "--api-key", KEY, log_dir=home)
    yield sp
    assert sp.stop() == 0


def mlxk(sp: ServeProcess, *args: str, key: str | None = KEY):
    env = {"MLXK_SERVER": sp.base_url, **({"MLXK_API_KEY": key} if key else {})}
    return run_mlxk(*args, env=env)


def ps(sp: ServeProcess) -> list[dict]:
    r = mlxk(sp, "ps", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return assert_valid(r.json)["data"]["models"]


def chat(sp: ServeProcess, model: str) -> None:
    r = httpx.post(sp.base_url + "/v1/chat/completions", timeout=300, headers={"Authorization": f"Bearer {KEY}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text


def _epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_ps_lists_both_then_stop_one_then_a_request_reloads_it(server: ServeProcess) -> None:
    chat(server, TINY_REPO_ID)
    chat(server, TINY_B)
    models = ps(server)
    assert [m["name"] for m in models] == [TINY_REPO_ID, TINY_B]
    for m in models:   # the server's --keep-alive 10m
        assert m["memory_bytes"] > 0 and m["state"] == "idle" and m["keep_alive_seconds"] == 600
        assert abs(_epoch(m["expires_at"]) - time.time() - 600) < 30
    human = mlxk(server, "ps")
    assert human.returncode == 0 and TINY_B in human.stdout and re.search(r"in [5-9] minutes", human.stdout)
    never = assert_valid(mlxk(server, "load", TINY_B, "--keep-alive", "-1", "--json").json)["data"]["model"]
    assert never["expires_at"] is None and "never" in mlxk(server, "ps").stdout
    stopped = mlxk(server, "stop", TINY_B, "--json")
    assert stopped.returncode == 0 and assert_valid(stopped.json)["data"]["stopped"] == [TINY_B]
    assert [m["name"] for m in ps(server)] == [TINY_REPO_ID]
    chat(server, TINY_B)
    assert [m["name"] for m in ps(server)] == [TINY_REPO_ID, TINY_B]


def test_load_with_keep_alive_expires_and_ps_empties(server: ServeProcess) -> None:
    mlxk(server, "stop", "--all")
    r = mlxk(server, "load", TINY_REPO_ID, "--keep-alive", "5m", "--json")
    row = assert_valid(r.json)["data"]["model"]
    assert r.returncode == 0 and row["name"] == TINY_REPO_ID and row["keep_alive_seconds"] == 300
    assert abs(_epoch(row["expires_at"]) - time.time() - 300) < 30
    for name in (TINY_REPO_ID, TINY_B):
        assert mlxk(server, "load", name, "--keep-alive", "2s").returncode == 0
    assert {m["name"] for m in ps(server)} == {TINY_REPO_ID, TINY_B}
    deadline = time.monotonic() + 60
    while ps(server):
        assert time.monotonic() < deadline, "keep-alive 2s never unloaded the models"
        time.sleep(0.5)


def test_errors_name_the_problem(server: ServeProcess) -> None:
    no_key = mlxk(server, "ps", "--json", key=None)
    assert no_key.returncode == 1 and assert_valid(no_key.json)["error"]["type"] == "authentication_error"
    missing = mlxk(server, "stop", "not/loaded", "--json")
    assert missing.returncode == 1 and assert_valid(missing.json)["error"]["type"] == "model_not_found"
    bad = mlxk(server, "load", "not/cached-anywhere", "--json")
    assert bad.returncode == 1 and assert_valid(bad.json)["error"]["message"].startswith(server.base_url)
    usage = mlxk(server, "load", TINY_B, "--keep-alive", "soon")
    assert usage.returncode == 2 and "keep-alive" in usage.stderr


def test_ps_without_a_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run_mlxk("ps", "--json", "--server", url)
    assert r.returncode == 1
    err = assert_valid(r.json)["error"]
    assert err["type"] == "server_unreachable" and err["url"] == url and url in err["message"]
    human = run_mlxk("ps", env={"MLXK_SERVER": url})
    assert human.returncode == 1 and human.stderr.startswith(f"ps: Error: no mlxk server answers at {url}")


def test_ps_imports_nothing_heavy(server: ServeProcess, tmp_path: Path) -> None:
    r, modules = imported_modules(tmp_path, "ps", env={"MLXK_SERVER": server.base_url, "MLXK_API_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert not modules & {*HEAVY, "httpx", "fastapi"}
