"""Tiny random-weight models of chosen families for the distributed tests.

Built in-process (mlx + tokenizers), float32, a small byte-level BPE tokenizer with a
ChatML template, so mlx-lm loads them and `mlxk run` treats them as chat models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Tensor parallelism splits attention heads across ranks; pipeline parallelism splits layers.",
    "Hello world, this is a tiny model used only in tests of the distributed engine.",
    "one two three four five six seven eight nine ten eleven twelve",
    "MLX runs on Apple silicon and on Linux CPUs. Two ranks talk over a ring of sockets.",
]


def _tokenizer(out: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "chat_template": CHAT_TEMPLATE, "model_max_length": 2048,
        "added_tokens_decoder": {str(tok.token_to_id(s)): {"content": s, "special": True}
                                 for s in specials},
    }))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
    return tok.get_vocab_size()


def build_tiny_model(out: Path, model_type: str, *, heads: int = 4, kv_heads: int = 2,
                     layers: int = 4, hidden: int = 64, intermediate: int = 128,
                     seed: int = 3, extra: dict[str, Any] | None = None) -> Path:
    """Write a loadable tiny ``model_type`` (llama, qwen2, ...) to ``out``; returns ``out``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import _get_classes

    out.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(out)
    eos = json.loads((out / "tokenizer.json").read_text())["added_tokens"]
    eos_id = next(t["id"] for t in eos if t["content"] == "<|im_end|>")
    config: dict[str, Any] = {
        "model_type": model_type, "architectures": ["LlamaForCausalLM" if model_type == "llama"
                                                    else "Qwen2ForCausalLM"],
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "eos_token_id": eos_id, "torch_dtype": "float32",
    }
    config.update(extra or {})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    model_cls, args_cls = _get_classes(config)
    mx.random.seed(seed)
    model = model_cls(args_cls.from_dict(config))
    # Larger-than-default output weights make the argmax decisive (no near-ties).
    params = dict(tree_flatten(model.parameters()))
    params = {k: (v * 4 if k.startswith("lm_head") else v) for k, v in params.items()}
    mx.save_safetensors(str(out / "model.safetensors"), params, metadata={"format": "mlx"})
    return out
