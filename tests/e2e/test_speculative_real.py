"""`mlxk run --draft-model` and `--prompt-lookup`: a second model with SmolLM2's tokenizer drafts (built here: SmolLM2
with every layer's quantization scales perturbed by 5% random noise, so it agrees with the model often but
not always; a truncated copy drafts garbage); greedy output is token-for-token the plain
output, and on a prompt whose answer repeats its input the draft's tokens get accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import cache_smollm2

from mlxk.cache.importer import import_directory

DRAFT_ID = "mlxk-test/SmolLM2-draft"
PROMPT = ("Repeat this line exactly: the cat sat on the mat, the cat sat on the mat, "
          "the cat sat on the mat.")
NOISE = 0.05


def build_draft(src: Path, dest: Path) -> Path:
    import mlx.core as mx

    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, dest / f.name)
    mx.random.seed(3)
    for f in src.glob("*.safetensors"):
        weights = {k: v * (1 + NOISE * mx.random.normal(v.shape)).astype(v.dtype) if k.endswith(".scales") and k.startswith("model.layers.")
                   else v for k, v in mx.load(str(f)).items()}
        mx.save_safetensors(str(dest / f.name), weights, metadata={"format": "mlx"})
    return dest


@pytest.fixture
def models(smollm2_dir: Path, hub_cache: Path, tmp_path: Path) -> tuple[str, str]:
    import_directory(build_draft(smollm2_dir, tmp_path / "draft"), DRAFT_ID, root=hub_cache)
    return cache_smollm2(hub_cache, smollm2_dir), DRAFT_ID


def answer(model: str, *extra: str) -> dict:
    r = run_mlxk("run", model, PROMPT, "--temperature", "0", "--max-tokens", "24", "--json", *extra)
    assert r.returncode == 0, r.stderr
    return r.json["data"]


def test_draft_model_same_greedy_output_and_accepts(models: tuple[str, str]) -> None:
    model, draft = models
    plain = answer(model)
    spec = answer(model, "--draft-model", draft, "--num-draft-tokens", "3")
    assert spec["response"] == plain["response"]
    assert spec["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]
    t = spec["timing"]
    assert t["accepted_tokens"] > 0 and 0 < t["acceptance_rate"] <= 1
    assert t["draft_tokens"] >= t["accepted_tokens"]
    assert "acceptance_rate" not in plain["timing"]


def test_draft_with_another_vocabulary_is_refused(smollm2_cached: str, tiny_cached: str) -> None:
    r = run_mlxk("run", smollm2_cached, "hi", "--draft-model", tiny_cached)
    assert r.returncode != 0 and "does not share the vocabulary" in r.stderr


CODE_EDIT = ("Rename the function to plus and print the whole code.\n\n"
             "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n")


def test_prompt_lookup_same_greedy_output_and_accepts(smollm2_cached: str) -> None:
    plain = answer_to(smollm2_cached, CODE_EDIT)
    spec = answer_to(smollm2_cached, CODE_EDIT, "--prompt-lookup", "4")
    assert spec["response"] == plain["response"]
    t = spec["timing"]
    assert t["accepted_tokens"] > 0 and 0 < t["acceptance_rate"] <= 1
    assert t["draft_tokens"] >= t["accepted_tokens"]


def answer_to(model: str, prompt: str, *extra: str) -> dict:
    r = run_mlxk("run", model, prompt, "--temperature", "0", "--max-tokens", "32", "--json", *extra)
    assert r.returncode == 0, r.stderr
    return r.json["data"]


def test_prompt_lookup_refusals(smollm2_cached: str) -> None:
    r = run_mlxk("run", smollm2_cached, "hi", "--prompt-lookup", "2", "--draft-model", smollm2_cached)
    assert r.returncode == 2 and "choose one" in r.stderr
    r = run_mlxk("run", smollm2_cached, "hi", "--prompt-lookup", "0")
    assert r.returncode != 0 and "--prompt-lookup must be between 1 and 16" in r.stderr
