"""`mlxk embed` as a real subprocess on the real MiniLM in a temporary cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.support.cache_factory import add_repo, config_json
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"

pytestmark = pytest.mark.slow


def _valid(envelope: dict) -> None:
    assert_valid(envelope, "embed")


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _ref(i: int) -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))["items"][i]


def test_texts_as_arguments_give_jsonl_records(minilm_cached: str) -> None:
    ref = _ref(9)
    res = run_mlxk("embed", minilm_cached, ref["text"], "--batch-size", "1", "second text")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    recs = _lines(res.stdout)
    assert [r["text"] for r in recs] == [ref["text"], "second text"]
    for r in recs:
        assert set(r) == {"text", "embedding", "model", "dimensions"}
        assert r["model"] == minilm_cached and r["dimensions"] == 384 == len(r["embedding"])
    got = np.array(recs[0]["embedding"])
    want = np.array(ref["embedding"])
    assert got @ want / (np.linalg.norm(got) * np.linalg.norm(want)) >= 0.999


def test_stdin_one_text_per_line_and_short_name(minilm_cached: str) -> None:
    res = run_mlxk("embed", "all-minilm-l6", "-", input="first line\n\nsecond line\n")
    assert res.returncode == 0, res.stderr
    recs = _lines(res.stdout)
    assert [r["text"] for r in recs] == ["first line", "second line"]
    assert {r["model"] for r in recs} == {minilm_cached}


def test_jsonl_stdin_passes_other_fields_through(minilm_cached: str) -> None:
    lines = [{"id": 7, "text": "A man is eating food.", "meta": {"lang": "en"}},
             {"id": "x", "text": "A man eats a meal."},
             {"id": None, "text": "Stock prices fell sharply."}]
    res = run_mlxk("embed", minilm_cached, "-", input="".join(json.dumps(x) + "\n" for x in lines))
    assert res.returncode == 0, res.stderr
    recs = _lines(res.stdout)
    assert [(r["id"], r["text"]) for r in recs] == [(x["id"], x["text"]) for x in lines]
    assert recs[0]["meta"] == {"lang": "en"}
    v = [np.array(r["embedding"]) for r in recs]
    assert v[0] @ v[1] > v[0] @ v[2]  # paraphrase closer than unrelated (unit vectors)


def test_json_envelope_validates_against_schema(minilm_cached: str) -> None:
    res = run_mlxk("--json", "embed", minilm_cached, "hello", "world peace")
    assert res.returncode == 0, res.stderr
    env = res.json
    _valid(env)
    data = env["data"]
    assert data["count"] == 2 and data["dimensions"] == 384
    assert data["usage"]["prompt_tokens"] == 3 + 4  # [CLS] hello [SEP] / [CLS] world peace [SEP]
    assert data["pooling"] == "mean" and data["normalized"] is True


def test_too_long_text_with_no_truncate_fails_and_default_truncates(minilm_cached: str) -> None:
    long_text = "word " * 300
    res = run_mlxk("embed", minilm_cached, "--no-truncate", long_text, "--json")
    assert res.returncode == 1
    _valid(res.json)
    assert res.json["error"]["type"] == "ValidationError"
    msg = res.json["error"]["message"]
    assert "302 tokens" in msg and "limit of 256" in msg and "--no-truncate" in msg
    ok = run_mlxk("embed", minilm_cached, long_text)
    assert ok.returncode == 0, ok.stderr
    assert len(_lines(ok.stdout)) == 1
    assert "cut to the model's limit of 256 tokens" in ok.stderr


def test_chat_model_is_refused_before_loading(hub_cache: Path) -> None:
    add_repo(hub_cache, "org/chat-model", {
        "config.json": config_json(),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}),
        "model.safetensors": b"not loaded",
    })
    res = run_mlxk("embed", "org/chat-model", "hello")
    assert res.returncode == 1
    assert "chat model, not an embedding model" in res.stderr
    assert "mlxk run" in res.stderr
    assert "Traceback" not in res.stderr
    env = run_mlxk("embed", "org/chat-model", "hello", "--json").json
    _valid(env)
    assert env["error"]["type"] == "ValidationError"


def test_unknown_model_and_bad_input(hub_cache: Path) -> None:
    res = run_mlxk("embed", "nobody/nothing", "hello", "--json")
    assert res.returncode == 1
    _valid(res.json)
    assert res.json["error"]["type"] == "model_not_found"
    bad = run_mlxk("embed", "nobody/nothing", "-", input='{"text": "a"}\nplain line\n')
    assert bad.returncode == 1 and "stdin line 2" in bad.stderr
    usage = run_mlxk("embed", "--batch-size", "x", "m", "t")
    assert usage.returncode == 2


def test_fast_blas_and_bundled_blas_agree(minilm_cached: str) -> None:
    """mlxk.engine.blas swaps MLX's CPU BLAS on Linux; vectors must not change beyond float noise."""
    texts = ["The cat sits on the mat.", "Quantum entanglement links two particles."]
    fast = run_mlxk("embed", minilm_cached, *texts)
    bundled = run_mlxk("embed", minilm_cached, *texts, env={"MLXK_BLAS": "reference"})
    assert fast.returncode == 0 and bundled.returncode == 0, fast.stderr + bundled.stderr
    for a, b in zip(_lines(fast.stdout), _lines(bundled.stdout), strict=True):
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-5)


def test_blas_helper_reports_a_real_library() -> None:
    import subprocess
    import sys

    from tests.support.cli import mlxk_env

    code = ("import ctypes, json; from mlxk.engine import blas; p = blas.use_fast_blas(); "
            "print(json.dumps([p, p is None or hasattr(ctypes.CDLL(p), 'cblas_sgemm')]))")
    out = subprocess.run([sys.executable, "-c", code], env=mlxk_env(), capture_output=True,
                         text=True, check=True).stdout
    _path, ok = json.loads(out)
    assert ok
    off = subprocess.run([sys.executable, "-c", code], env=mlxk_env({"MLXK_BLAS": "reference"}),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(off)[0] is None


def test_local_directory_and_unsupported_encoder(minilm_dir: Path, hub_cache: Path) -> None:
    res = run_mlxk("embed", str(minilm_dir), "a local model dir")
    assert res.returncode == 0, res.stderr
    rec = _lines(res.stdout)[0]
    assert rec["model"] == str(minilm_dir) and rec["dimensions"] == 384
    add_repo(hub_cache, "org/t5-encoder", {
        "config.json": json.dumps({"model_type": "t5", "architectures": ["T5EncoderModel"]}),
        "modules.json": "[]",
        "model.safetensors": b"never loaded",
    })
    bad = run_mlxk("embed", "org/t5-encoder", "x", "--json")
    assert bad.returncode == 1
    assert bad.json["error"]["type"] == "not_runtime_compatible"
    assert "t5" in bad.json["error"]["message"]


def test_minilm_is_listed_as_embedding_and_run_points_to_embed(minilm_cached: str) -> None:
    show = run_mlxk("show", minilm_cached, "--json")
    assert show.returncode == 0, show.stderr
    model, meta = show.json["data"]["model"], show.json["data"]["metadata"]
    assert model["model_type"] == "embedding" and model["capabilities"] == ["embeddings"]
    assert model["runtime_compatible"] is True and model["health"] == "healthy"
    assert meta["embedding_dimension"] == 384
    listed = {m["name"]: m for m in run_mlxk("list", "--json").json["data"]["models"]}
    assert listed[minilm_cached]["model_type"] == "embedding"
    run = run_mlxk("run", minilm_cached, "hello")
    assert run.returncode == 1
    assert f"mlxk embed {minilm_cached}" in run.stderr and "Traceback" not in run.stderr
