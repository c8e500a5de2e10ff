"""An in-process random-weight llama with a small trained byte-level BPE tokenizer.

For constrained-decoding tests that must not depend on files on disk: a real engine
``LoadedModel`` around an in-memory model and tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlxk.engine.types import LoadedModel


def build_tiny_lm(seed: int = 7) -> LoadedModel:
    import mlx.core as mx
    from mlx_lm.models import llama
    from mlx_lm.tokenizer_utils import TokenizerWrapper
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from mlxk.engine.types import LoadedModel

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ['{"name": "Ann", "age": 31}', "[1, 2, 3]", '{"color": "red"}',
              "<tool_call>\n", "hello world, the quick brown fox"] * 20
    tok.train_from_iterator(corpus, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>")
    hf.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
                        "{% if add_generation_prompt %}<assistant>{% endif %}")
    wrapper = TokenizerWrapper(hf)
    vocab = len(hf) + 7  # padded like many real models: logits wider than the vocab
    args = llama.ModelArgs(model_type="llama", hidden_size=32, num_hidden_layers=1,
                           intermediate_size=64, num_attention_heads=2, rms_norm_eps=1e-5,
                           vocab_size=vocab, num_key_value_heads=1)
    mx.random.seed(seed)
    model = llama.Model(args)
    eos = hf.convert_tokens_to_ids("<|end|>")
    return LoadedModel(model=model, tokenizer=wrapper, eos_token_ids={eos}, config={"vocab_size": vocab},
                       name="tiny", path=Path("tiny"), context_length=512, has_chat_template=True)


def assert_one_call(chunks: list, name: str, parameters: dict) -> None:
    """The streamed answer is exactly one call of ``name`` whose arguments validate, no text."""
    import json

    import jsonschema

    calls = [c for ch in chunks for c in ch.tool_calls or []]
    assert chunks[-1].finish_reason == "tool_calls"
    assert len(calls) == 1 and calls[0]["function"]["name"] == name
    jsonschema.validate(json.loads(calls[0]["function"]["arguments"]), parameters)
    assert "".join(ch.text for ch in chunks).strip() == ""


class FakeDecoder:
    """Stands in for the engine's SequenceDecoder: one char of text per token id."""

    def __init__(self, tokenizer, eos):
        self.tokenizer, self.eos = tokenizer, eos
        self.ids: list[int] = []
        self.finished = False
        self._sent = ""

    def feed(self, token_id):
        from mlxk.engine.types import Chunk

        if token_id in self.eos:
            self.finished = True
            return []
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        delta, self._sent = text[len(self._sent):], text
        return [Chunk(text=delta)] if delta else []

    def finish(self, reason):
        from mlxk.engine.types import Chunk

        return Chunk(finish_reason=reason, completion_tokens=len(self.ids))
