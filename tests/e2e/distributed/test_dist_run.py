"""`mlxk run --hosts`: two ranks on 127.0.0.1 give the single-process answer; bad input fails early."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.dist_procs import TWO_LOCAL, alive, descendants, rank_pids
from tests.support.schema import assert_valid

PROMPT = "hello there"
GEN = ("--temperature", "0", "--max-tokens", "16")


def _run_json(*args: str) -> dict:
    r = run_mlxk("--json", "run", *args, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert_valid(r.json, "run")
    return r.json["data"]


@pytest.mark.parametrize("repo,mode", [("mlxk-test/dist-llama", "tensor"),
                                       ("mlxk-test/dist-qwen2", "pipeline")])
def test_two_ranks_generate_the_single_process_tokens(dist_cache: Path, repo: str, mode: str) -> None:
    single = _run_json(repo, PROMPT, *GEN)
    sharded = _run_json(repo, PROMPT, *GEN, "--hosts", TWO_LOCAL, "--parallel", mode)
    assert single["usage"]["completion_tokens"] == 16
    assert sharded["usage"] == single["usage"]
    assert sharded["finish_reason"] == single["finish_reason"]
    assert sharded["response"] == single["response"]
    assert len(set(single["response"])) > 3  # a real, varied answer, not one repeated token


def test_seeded_sampling_draws_the_same_tokens_on_every_rank(dist_cache: Path) -> None:
    """temperature > 0: every rank must sample the same token, or the shards diverge."""
    args = ("mlxk-test/dist-qwen2", PROMPT, "--temperature", "0.9", "--seed", "5", "--max-tokens", "16")
    single = _run_json(*args)
    sharded = _run_json(*args, "--hosts", TWO_LOCAL)
    greedy = _run_json("mlxk-test/dist-qwen2", PROMPT, *GEN)
    assert single["response"] != greedy["response"]  # the seed really sampled
    assert sharded["response"] == single["response"]


def test_dry_run_prints_the_plan_without_starting_ranks(dist_cache: Path) -> None:
    r = run_mlxk("--json", "run", "mlxk-test/dist-qwen2", "x", "--hosts", TWO_LOCAL,
                 "--parallel", "pipeline", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert_valid(r.json, "run")
    plan = r.json["data"]["plan"]
    assert plan["mode"] == "pipeline" and plan["world_size"] == 2
    assert [x["layers"] for x in plan["ranks"]] == [[2, 4], [0, 2]]
    assert all(0 < x["bytes"] < plan["total_bytes"] for x in plan["ranks"])
    human = run_mlxk("run", "mlxk-test/dist-llama", "x", "--hosts", TWO_LOCAL, "--dry-run")
    assert "rank 1 @ 127.0.0.1" in human.stdout and "heads 2" in human.stdout


@pytest.mark.parametrize("repo,extra,message", [
    ("mlxk-test/dist-gpt2", (), "cannot be sharded"),
    ("mlxk-test/dist-llama-3heads", (), "3 attention heads"),
    ("mlxk-test/dist-llama", ("--parallel", "pipeline"), "does not support pipeline"),
])
def test_unshardable_models_fail_before_any_rank_starts(dist_cache: Path, repo: str, extra: tuple,
                                                        message: str) -> None:
    r = run_mlxk("run", repo, PROMPT, "--hosts", TWO_LOCAL, *extra, timeout=60)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Starting" not in r.stderr and "Traceback" not in r.stderr
    j = run_mlxk("--json", "run", repo, PROMPT, "--hosts", TWO_LOCAL, *extra, timeout=60)
    assert j.returncode == 1 and j.json["status"] == "error" and message in j.json["error"]["message"]
    assert_valid(j.json, "run")


def test_unreachable_host_in_hostfile_fails_before_load(dist_cache: Path, tmp_path: Path) -> None:
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps({"hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]},
                                              {"ssh": "rank-b.invalid", "ips": ["192.0.2.10"]}]}))
    r = run_mlxk("run", "mlxk-test/dist-llama", PROMPT, "--hostfile", str(hostfile), timeout=60)
    assert r.returncode == 1
    assert "host 'rank-b.invalid' is unreachable" in r.stderr
    assert "Starting" not in r.stderr and "Traceback" not in r.stderr


def test_a_killed_rank_ends_the_run_with_a_clear_error(dist_cache: Path) -> None:
    """Rank 1 dies mid-generation: the run stops in bounded time, names the rank, leaves nothing."""
    proc = subprocess.Popen(mlxk_argv("run", "mlxk-test/dist-llama", PROMPT, "--temperature", "0",
                                      "--max-tokens", "100000", "--hosts", TWO_LOCAL),
                            env=mlxk_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ranks = rank_pids(proc.pid)
        assert set(ranks) == {0, 1}
        family = [proc.pid, *descendants(proc.pid)]
        assert proc.stdout is not None
        proc.stdout.read(1)  # generation has started
        subprocess.run(["kill", "-9", str(ranks[1])], check=True)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "distributed run failed" in err and "rank 1" in err and "SIGKILL" in err, err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert [p for p in family if alive(p)] == []


def test_hosts_flag_is_in_help() -> None:
    out = subprocess.run([sys.executable, "-m", "mlxk", "run", "--help"], env=mlxk_env(),
                         capture_output=True, text=True)
    assert "--hosts" in out.stdout and "--parallel" in out.stdout and "--hostfile" in out.stdout


def test_show_reports_the_parallel_modes(dist_cache: Path) -> None:
    r = run_mlxk("--json", "show", "mlxk-test/dist-qwen2")
    assert r.returncode == 0, r.stderr
    assert_valid(r.json, "show")
    assert r.json["data"]["metadata"]["parallel_modes"] == ["tensor", "pipeline"]
    gpt2 = run_mlxk("show", "mlxk-test/dist-gpt2")
    assert "none (cannot be sharded)" in gpt2.stdout
    llama = run_mlxk("--json", "show", "mlxk-test/dist-llama")
    assert llama.json["data"]["metadata"]["parallel_modes"] == ["tensor"]


def test_mpi_backend_is_refused_clearly(dist_cache: Path) -> None:
    r = run_mlxk("run", "mlxk-test/dist-llama", PROMPT, "--hosts", TWO_LOCAL, "--backend", "mpi")
    assert r.returncode == 1 and "mpi backend is not supported" in r.stderr


def test_a_hung_rank_is_caught_by_the_collective_deadline(dist_cache: Path) -> None:
    """Rank 1 stops answering without closing its sockets (SIGSTOP: a frozen host or a cut
    cable looks like this): the watchdog on rank 0 ends the run instead of hanging."""
    env = {"MLXK_DIST_TIMEOUT": "5"}
    from tests.support.cli import mlxk_env as _env

    proc = subprocess.Popen(mlxk_argv("run", "mlxk-test/dist-llama", PROMPT, "--temperature", "0",
                                      "--max-tokens", "100000", "--hosts", TWO_LOCAL),
                            env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ranks = rank_pids(proc.pid)
        family = [proc.pid, *descendants(proc.pid)]
        assert proc.stdout is not None
        proc.stdout.read(1)
        subprocess.run(["kill", "-STOP", str(ranks[1])], check=True)
        try:
            _, err = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the run did not end after rank 1 froze:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    # rank 0 says so itself, or (when MLX held the GIL) its hard deadline says it for it
    assert "no answer from the other ranks" in err, err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert [p for p in family if alive(p)] == []


def test_a_piped_prompt_works_as_in_one_process(dist_cache: Path) -> None:
    single = _run_json("mlxk-test/dist-llama", PROMPT, *GEN)
    r = run_mlxk("--json", "run", "mlxk-test/dist-llama", *GEN, "--hosts", TWO_LOCAL, input=PROMPT + "\n",
                 timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.json["data"]["response"] == single["response"]


def test_json_schema_envelope_carries_parsed_like_a_single_process(dist_cache: Path, tmp_path: Path) -> None:
    """`run --hosts --json-schema --json` builds its envelope with the local run's code (issue 12)."""
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}},
                                  "required": ["n"], "additionalProperties": False}))
    args = ("mlxk-test/dist-qwen2", PROMPT, "--temperature", "0", "--max-tokens", "24",
            "--json-schema", str(schema))
    single = _run_json(*args)
    sharded = _run_json(*args, "--hosts", TWO_LOCAL)
    assert "parsed" in single and "parsed" in sharded
    assert sharded["response"] == single["response"] and sharded["parsed"] == single["parsed"]
    if sharded["finish_reason"] == "stop":
        assert sharded["parsed"] == json.loads(sharded["response"])
