"""`serve --hosts`: the official openai client cannot tell two ranks from one process."""

from __future__ import annotations

import concurrent.futures as cf
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import run_mlxk
from tests.support.dist_procs import TWO_LOCAL, alive, descendants, rank_pids
from tests.support.fixtures_server import module_hf_home, port_is_free, start_serve
from tests.support.schema import assert_valid

MODEL = "mlxk-test/dist-llama"
KEY = "sk-distributed-test"
QUESTIONS = ["hello there", "what is the capital of France?", "count to ten", "tell me about MLX"]


@pytest.fixture(scope="module")
def serve_home(tmp_path_factory: pytest.TempPathFactory, dist_model_dirs: dict[str, Path]) -> Path:
    return module_hf_home(tmp_path_factory, {MODEL: dist_model_dirs[MODEL]})


@pytest.fixture(scope="module")
def servers(serve_home: Path) -> Iterator[tuple[str, str]]:
    """One single-process server and one two-rank server on the same model."""
    single = start_serve(serve_home, "--model", MODEL, "--api-key", KEY)
    sharded = None
    try:
        # the key travels to rank 0 over its stdin pipe, never on a command line
        sharded = start_serve(serve_home, "--model", MODEL, "--hosts", TWO_LOCAL, "--api-key", KEY)
        assert all(KEY not in " ".join(_cmdline(p)) for p in descendants(sharded.proc.pid))
        yield single.base_url, sharded.base_url
    finally:
        single.stop()
        if sharded is not None:
            sharded.stop()


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _client(url: str, key: str = KEY) -> Any:
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _chat(url: str, q: str, stream: bool, **extra: Any) -> str:
    c = _client(url)
    kw = {"model": MODEL, "messages": [{"role": "user", "content": q}], "temperature": 0, "max_tokens": 12,
          **extra}
    if not stream:
        r = c.chat.completions.create(**kw)
        assert r.usage.completion_tokens > 0
        return r.choices[0].message.content or ""
    return "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **kw)
                   if ch.choices)


@pytest.mark.parametrize("stream", [False, True])
def test_sharded_server_answers_like_a_single_one(servers: tuple[str, str], stream: bool) -> None:
    single, sharded = servers
    for q in QUESTIONS[:2]:
        want = _chat(single, q, stream)
        assert want
        assert _chat(sharded, q, stream) == want


def test_concurrent_requests_step_one_batch_on_both_ranks(servers: tuple[str, str]) -> None:
    single, sharded = servers
    want = [_chat(single, q, False) for q in QUESTIONS]
    with cf.ThreadPoolExecutor(len(QUESTIONS)) as ex:
        got = list(ex.map(lambda q: _chat(sharded, q, False), QUESTIONS))
    assert got == want
    models = _client(sharded).models.list()
    assert MODEL in [m.id for m in models.data]


def test_stop_strings_and_auth_behave_as_on_one_process(servers: tuple[str, str]) -> None:
    import openai

    single, sharded = servers
    full = _chat(single, QUESTIONS[2], False)
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop.strip()
    want = _chat(single, QUESTIONS[2], False, stop=[stop])
    assert len(want) < len(full)
    # a stop string ends the sequence on rank 0: the other rank must drop it at the same step
    assert _chat(sharded, QUESTIONS[2], False, stop=[stop]) == want
    assert _chat(sharded, QUESTIONS[2], True, stop=[stop]) == want
    assert _chat(sharded, QUESTIONS[0], False) == _chat(single, QUESTIONS[0], False)
    with pytest.raises(openai.AuthenticationError):
        _client(sharded, "wrong").models.list()


def test_dry_run_prints_the_plan(serve_home: Path) -> None:
    from tests.support.cli import run_mlxk

    r = run_mlxk("--json", "serve", "--model", MODEL, "--hosts", TWO_LOCAL, "--dry-run",
                 env={"HF_HOME": str(serve_home)})
    assert r.returncode == 0, r.stderr
    assert_valid(r.json, "serve")
    plan = r.json["data"]["plan"]
    assert plan["mode"] == "tensor"
    assert [x["attention_heads"] for x in plan["ranks"]] == [2, 2]


def test_killed_rank_stops_the_server_with_a_clear_error(serve_home: Path) -> None:
    sp = start_serve(serve_home, "--model", MODEL, "--hosts", TWO_LOCAL)
    try:
        ranks = rank_pids(sp.proc.pid)
        family = [sp.proc.pid, *descendants(sp.proc.pid)]
        assert set(ranks) == {0, 1}
        subprocess.run(["kill", "-9", str(ranks[1])], check=True)
        code = sp.proc.wait(timeout=60)  # bounded: heartbeat + grace, far below this
    finally:
        sp.stop(signal.SIGKILL)
    assert sp.proc.stdout is not None
    out = (sp.proc.stdout.read() or b"").decode()  # --json: the error is the last envelope
    assert code == 1
    last = json.loads(out.strip().splitlines()[-1])
    assert last["status"] == "error", out
    assert_valid(last, "serve")
    assert_valid(sp.startup, "serve")
    assert sp.startup["data"]["ranks"] == 2 and sp.startup["data"]["parallel"] == "tensor"
    assert sp.startup["data"]["ui"] == f"http://127.0.0.1:{sp.port}/"  # rank 0 serves the chat page too
    msg = last["error"]["message"]
    assert "distributed server stopped" in msg and "rank 1" in msg and "SIGKILL" in msg, msg
    assert "Traceback" not in sp.stderr_text()
    time.sleep(0.5)
    assert [p for p in family if alive(p)] == []
    assert port_is_free(sp.port)


def test_sigterm_stops_every_rank(serve_home: Path) -> None:
    sp = start_serve(serve_home, "--model", MODEL, "--hosts", TWO_LOCAL)
    family = [sp.proc.pid, *descendants(sp.proc.pid)]
    assert sp.stop(signal.SIGTERM) == 0
    time.sleep(0.5)
    assert [p for p in family if alive(p)] == []
    assert port_is_free(sp.port)


def test_bad_settings_fail_before_any_rank_starts() -> None:
    """`serve --hosts` runs the local server's setting checks first (issue 12)."""
    r = run_mlxk("serve", "--model", "mlxk-test/dist-llama", "--hosts", TWO_LOCAL, "--max-batch", "0",
                 timeout=60)
    assert r.returncode != 0 and "--max-batch must be at least 1" in r.stderr, r.stderr
    assert "Starting" not in r.stderr
