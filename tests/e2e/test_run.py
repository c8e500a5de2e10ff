"""`mlxk run` end to end with the real SmolLM2-135M-Instruct (converted from the PyPI GGUF)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.schema import assert_valid

pytestmark = pytest.mark.slow
QUESTION = "What is the capital of France?"
GREEDY = ("--temperature", "0")
SPECIAL_MARKERS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|")


@pytest.fixture(scope="module")
def smol_tokenizer(smollm2_dir: Path):
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(smollm2_dir)


def test_json_answer_validates_with_real_token_counts(smollm2_cached: str, smol_tokenizer) -> None:
    r = run_mlxk("run", smollm2_cached, QUESTION, *GREEDY, "--max-tokens", "16", "--json")
    assert r.returncode == 0, r.stderr
    env = assert_valid(r.json)
    data = env["data"]
    assert "Paris" in data["response"]
    assert data["finish_reason"] == "stop"
    assert data["model"] == smollm2_cached and data["prompt"] == QUESTION
    prompt_ids = smol_tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}],
                                                    add_generation_prompt=True)
    assert data["usage"]["prompt_tokens"] == len(prompt_ids)
    # The answer's tokens plus the end-of-turn token that stopped it.
    answer_ids = smol_tokenizer.encode(data["response"], add_special_tokens=False)
    assert data["usage"]["completion_tokens"] == len(answer_ids) + 1
    assert data["timing"]["ttft_s"] > 0 and data["timing"]["load_s"] > 0
    assert not any(m in data["response"] for m in SPECIAL_MARKERS)


def test_streamed_human_answer_and_fuzzy_name(smollm2_cached: str) -> None:
    r = run_mlxk("run", "smollm2-135m", QUESTION, *GREEDY, "--max-tokens", "16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France is Paris."
    assert "Traceback" not in r.stderr


def test_max_tokens_cuts_with_length(smollm2_dir: Path) -> None:
    r = run_mlxk("run", str(smollm2_dir), QUESTION, *GREEDY, "--max-tokens", "3", "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3
    assert data["response"] == "The capital of"


def test_stop_string_ends_output_before_it(smollm2_dir: Path) -> None:
    r = run_mlxk("run", str(smollm2_dir), QUESTION, *GREEDY, "--max-tokens", "16",
                 "--stop", "e is Par", "--stop", "never-there", "--json")
    assert r.returncode == 0, r.stderr
    data = r.json["data"]
    assert data["response"] == "The capital of Franc"
    assert data["finish_reason"] == "stop"


def test_no_stream_verbose_system_and_raw_prompt(smollm2_dir: Path) -> None:
    r = run_mlxk("run", str(smollm2_dir), QUESTION, *GREEDY, "--max-tokens", "12", "--no-stream",
                 "--verbose", "--system", "You answer in one short sentence.")
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert "tok/s" in r.stderr and "peak memory" in r.stderr and "load" in r.stderr
    raw = run_mlxk("run", str(smollm2_dir), "The capital of France is", *GREEDY, "--max-tokens", "6",
                   "--no-chat-template", "--json")
    assert raw.returncode == 0, raw.stderr
    data = raw.json["data"]
    assert data["usage"]["prompt_tokens"] == 5  # the raw text only, no template around it
    assert not any(m in data["response"] for m in SPECIAL_MARKERS)


def test_stdin_with_instruction_and_quiet_head(smollm2_dir: Path, tiny_model_dir: Path) -> None:
    r = run_mlxk("run", str(smollm2_dir), "-", "Answer the question:", *GREEDY, "--max-tokens", "12",
                 "--json", input="What is the capital of France?\n")
    assert r.returncode == 0, r.stderr
    data = r.json["data"]
    assert data["prompt"] == "Answer the question:\n\nWhat is the capital of France?"
    assert "Paris" in data["response"]
    # Any model will do for the pipe: the tiny one writes 16 tokens of noise quickly.
    cmd = " ".join(f"'{a}'" for a in mlxk_argv("run", str(tiny_model_dir), "Tell me a story.", *GREEDY,
                                                "--max-tokens", "16"))
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -c 10"], env=mlxk_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == 10
    assert proc.stderr == ""


def test_failures_are_clear(smollm2_dir: Path, smollm2_cached: str, hub_cache: Path,
                            tmp_path: Path) -> None:
    from tests.support.cache_factory import add_repo

    unknown = run_mlxk("run", "no-such-model", "hi", "--json")
    assert unknown.returncode == 1 and unknown.json["error"]["type"] == "model_not_found"

    from mlxk.cache.importer import import_directory

    import_directory(smollm2_dir, "other/SmolLM2-copy", root=hub_cache)
    amb = run_mlxk("run", "smollm2", "hi")
    assert amb.returncode == 1 and "Traceback" not in amb.stderr
    assert "ambiguous" in amb.stderr.lower() or "matches" in amb.stderr

    add_repo(hub_cache, "acme/foo-model", {
        "config.json": '{"model_type": "foo_arch_xyz", "architectures": ["FooForCausalLM"]}',
        "model.safetensors": _tiny_safetensors(),
        "tokenizer.json": "{}",
    })
    foo = run_mlxk("run", "acme/foo-model", "hi", "--json")
    assert foo.returncode == 1
    assert foo.json["error"]["type"] == "not_runtime_compatible"
    assert "foo_arch_xyz" in foo.json["error"]["message"]

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in smollm2_dir.iterdir():
        if f.is_file():
            (corrupt / f.name).write_bytes(f.read_bytes())
    weights = corrupt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    bad = run_mlxk("run", str(corrupt), "hi", "--max-tokens", "2")
    assert bad.returncode == 1, bad.stdout
    assert "run: Error:" in bad.stderr and "Traceback" not in bad.stderr


def test_embedding_model_points_to_embed(minilm_cached: str) -> None:
    r = run_mlxk("run", minilm_cached, "hi", "--json")
    assert r.returncode == 1
    assert r.json["error"]["type"] == "not_runtime_compatible"
    assert "mlxk embed" in r.json["error"]["message"]


def _tiny_safetensors() -> bytes:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "__metadata__": {"format": "mlx"}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def test_interactive_chat_through_a_pty(smollm2_cached: str) -> None:
    import pexpect

    child = pexpect.spawn(sys.executable, mlxk_argv("run", smollm2_cached, *GREEDY, "--max-tokens", "32")[1:],
                          env=mlxk_env(), encoding="utf-8", timeout=240)
    try:
        child.expect(">>> ")
        child.sendline("/help")
        child.expect("/clear")
        child.expect(">>> ")
        # Two dependent turns: the second question only makes sense after the first.
        child.sendline(QUESTION)
        child.expect("Paris")
        child.expect(">>> ")
        child.sendline("What is its population?")
        child.expect(">>> ")
        assert "France" in child.before
        # /clear forgets: the same follow-up no longer knows what "it" is.
        child.sendline("/clear")
        child.expect("cleared")
        child.expect(">>> ")
        child.sendline("What is its population?")
        child.expect(">>> ")
        assert "France" not in child.before and "Paris" not in child.before
        # Ctrl-C in the middle of an answer stops it; the session goes on.
        child.sendline("Write a long story about a dragon who lives in a castle.")
        child.expect("castle.\r\n")
        child.expect(r"\w+")
        child.sendintr()
        child.expect(r"\[answer stopped\]")
        child.expect(">>> ")
        child.sendline('"""')
        child.sendline("What is the capital")
        child.sendline("of France?")
        child.sendline('"""')
        child.expect("Paris")
        child.expect(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    for marker in SPECIAL_MARKERS:
        assert marker not in (child.before or "")


def test_reasoning_model_with_preopened_think_block(tiny_think_dir: Path) -> None:
    """The template opens <think>: output is reasoning until </think>; --hide-reasoning hides it."""
    args = ("run", str(tiny_think_dir), "Hello", *GREEDY, "--max-tokens", "8")
    r = run_mlxk(*args, "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    thought, answer = data.get("reasoning", ""), data["response"]
    assert thought.strip(), data  # random weights: they start inside the pre-opened block
    assert "<think>" not in thought + answer and "</think>" not in thought + answer
    shown = run_mlxk(*args)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Thinking...\n")
    assert thought.strip() in shown.stdout and "...done thinking." in shown.stdout
    hidden = run_mlxk(*args, "--hide-reasoning")
    assert hidden.returncode == 0, hidden.stderr
    assert "Thinking..." not in hidden.stdout and thought.strip() not in hidden.stdout
    assert hidden.stdout.strip() == answer.strip()
