"""The CPU kernels on the real SmolLM2 (4-bit layers, 8-bit tied head) and their fallbacks.

- greedy text over 128 tokens is identical with the kernels and with MLX's own path;
- a build that fails (a compiler that always fails, in a fresh build folder) or cannot start
  (no compiler) leaves ``mlxk run`` working on the pure MLX path, and ``mlxk --version`` says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

from mlxk.engine.cpu_kernels import detect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(detect.not_applicable() is not None,
                       reason="CPU kernels not applicable on this machine"),
]
QUESTION = "What is the capital of France?"


def _kernels(version_json: dict) -> dict:
    return assert_valid(version_json)["data"]["system"]["cpu_kernels"]


def test_greedy_text_identical_to_pure_mlx_over_128_tokens(smollm2_dir: Path) -> None:
    from mlx_lm import generate
    from mlx_lm.sample_utils import make_sampler

    from mlxk.engine import cpu_kernels
    from mlxk.engine.cpu_kernels import runtime
    from mlxk.engine.loader import load_model

    lm = load_model(smollm2_dir)
    assert cpu_kernels.status().state == "active", cpu_kernels.status()
    assert type(lm.model.model.embed_tokens) is runtime.KernelQuantizedEmbedding   # 8-bit head
    messages = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]
    prompt = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def greedy() -> str:
        return generate(lm.model, lm.tokenizer, prompt, max_tokens=128, sampler=make_sampler(0.0))

    fast = greedy()
    assert runtime.unpatch_model(lm.model) > 200
    pure = greedy()
    assert len(lm.tokenizer.encode(fast)) >= 100     # the story did not stop early
    assert fast == pure


@pytest.fixture
def failing_build(tmp_path: Path) -> dict[str, str]:
    return {"MLXK_CPU_KERNELS_DIR": str(tmp_path / "kernels"), "MLXK_CPU_KERNELS_CXX": "false"}


def test_failed_build_falls_back_to_mlx_and_says_why(smollm2_dir: Path,
                                                     failing_build: dict[str, str]) -> None:
    before = run_mlxk("--version", "--json", env=failing_build)
    assert _kernels(before.json)["state"] == "will_build"
    r = run_mlxk("run", str(smollm2_dir), QUESTION, "--temperature", "0", "--max-tokens", "3",
                 "--json", env=failing_build)
    assert r.returncode == 0, r.stderr
    assert assert_valid(r.json)["data"]["response"] == "The capital of"
    assert "Traceback" not in r.stderr
    after = _kernels(run_mlxk("--version", "--json", env=failing_build).json)
    assert after["state"] == "unavailable"
    assert "build failed" in after["reason"] and Path(after["path"]).is_file()
    human = run_mlxk("--version", env=failing_build).stdout
    assert "CPU kernels: unavailable (pure MLX path: build failed" in human
    # a second load does not compile again: the failure is remembered
    log = Path(failing_build["MLXK_CPU_KERNELS_DIR"]).glob("*/build.log")
    lines = next(log).read_text().count("nb_combined.cpp")
    r = run_mlxk("run", str(smollm2_dir), QUESTION, "--temperature", "0", "--max-tokens", "1",
                 env=failing_build)
    assert r.returncode == 0, r.stderr
    log = Path(failing_build["MLXK_CPU_KERNELS_DIR"]).glob("*/build.log")
    assert next(log).read_text().count("nb_combined.cpp") == lines


def test_no_compiler_and_off_switch_in_version(tmp_path: Path) -> None:
    env = {"MLXK_CPU_KERNELS_DIR": str(tmp_path), "MLXK_CPU_KERNELS_CXX": "no-such-c++"}
    k = _kernels(run_mlxk("--version", "--json", env=env).json)
    assert k["state"] == "unavailable" and "'no-such-c++' not found" in k["reason"]
    k = _kernels(run_mlxk("--version", "--json", env={"MLXK_CPU_KERNELS": "off"}).json)
    assert k == {"state": "off", "reason": "turned off by MLXK_CPU_KERNELS=off", "path": None}
