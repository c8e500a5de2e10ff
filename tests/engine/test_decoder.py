"""SequenceDecoder with a real (tiny, trained) tokenizer: end tokens, specials, stops, counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxk.engine.text.decoder import SequenceDecoder
from mlxk.engine.types import Chunk


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path):
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def _decode(dec: SequenceDecoder, ids: list[int], reason: str = "length") -> tuple[str, str, Chunk]:
    chunks: list[Chunk] = []
    for t in ids:
        chunks += dec.feed(t)
        if dec.finished:
            reason = "stop"
            break
    final = dec.finish(reason)
    chunks.append(final)
    return "".join(c.text for c in chunks), "".join(c.reasoning for c in chunks), final


def _ids(tok, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def _special(tok, name: str) -> int:
    return tok.convert_tokens_to_ids(name)


def test_end_of_turn_token_stops_and_is_never_shown(tok) -> None:
    im_end = _special(tok, "<|im_end|>")
    ids = _ids(tok, "Hello world! The capital of France is Paris.")
    dec = SequenceDecoder(tok, {im_end}, prompt_tokens=7)
    text, _, final = _decode(dec, [*ids, im_end, *_ids(tok, "never shown")])
    assert text == "Hello world! The capital of France is Paris."
    assert final.finish_reason == "stop"
    assert (final.prompt_tokens, final.completion_tokens) == (7, len(ids) + 1)


def test_other_special_tokens_are_hidden(tok) -> None:
    im_end, im_start = _special(tok, "<|im_end|>"), _special(tok, "<|im_start|>")
    ids = [*_ids(tok, "Hello"), im_start, *_ids(tok, " world")]
    dec = SequenceDecoder(tok, {im_end}, hidden_token_ids={im_start})
    text, _, final = _decode(dec, ids)
    assert text == "Hello world" and "<|" not in text
    assert final.finish_reason == "length" and final.completion_tokens == len(ids)


def test_stop_string_spanning_tokens(tok) -> None:
    ids = _ids(tok, "Hello world! How are you today?")
    assert len(ids) > 4
    for stop in ("world! How", "d! H", "you"):
        dec = SequenceDecoder(tok, set(), stop=(stop,))
        text, _, final = _decode(dec, ids)
        assert text == "Hello world! How are you today?".split(stop)[0], stop
        assert final.finish_reason == "stop"
        assert stop not in text


def test_unmatched_partial_stop_is_flushed_at_length(tok) -> None:
    ids = _ids(tok, "Hello wor")
    dec = SequenceDecoder(tok, set(), stop=("world peace",))
    text, _, final = _decode(dec, ids)
    assert text == "Hello wor" and final.finish_reason == "length"


def test_think_reasoning_split_on_tokens(tok) -> None:
    ids = _ids(tok, "<think> reasoning here </think> The answer")
    dec = SequenceDecoder(tok, set(), reasoning_format="think")
    text, reasoning, _ = _decode(dec, ids)
    assert reasoning.strip() == "reasoning here"
    assert text == "The answer"


def test_utf8_split_across_tokens(tok) -> None:
    ids = _ids(tok, "Café ü 😀 done")
    dec = SequenceDecoder(tok, set())
    text, _, _ = _decode(dec, ids)
    assert text == "Café ü 😀 done"
    assert "\ufffd" not in text


class _WordTok:
    """A word-level tokenizer with harmony markup tokens, for the harmony decoder path."""

    words = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "assistant",
             "analysis", "final", "Think", " hard.", "Paris", " it is.", "a", " ,b")

    def __init__(self) -> None:
        from mlx_lm.tokenizer_utils import NaiveStreamingDetokenizer

        self._detok = NaiveStreamingDetokenizer(self)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.words[i] for i in ids)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.words.index(w) for w in ("a", " ,b")]

    @property
    def detokenizer(self):
        import copy

        d = copy.copy(self._detok)
        d.reset()
        return d


def test_harmony_channels_from_marker_tokens() -> None:
    tok = _WordTok()
    ids = {w: i for i, w in enumerate(tok.words)}
    markers = {ids[w] for w in ("<|start|>", "<|channel|>", "<|message|>", "<|end|>")}
    seq = ["<|channel|>", "analysis", "<|message|>", "Think", " hard.", "<|end|>", "<|start|>",
           "assistant", "<|channel|>", "final", "<|message|>", "Paris", " it is.", "<|return|>"]
    dec = SequenceDecoder(tok, {ids["<|return|>"]}, reasoning_format="harmony", marker_token_ids=markers)
    text, reasoning, final = _decode(dec, [ids[w] for w in seq])
    assert (reasoning, text) == ("Think hard.", "Paris it is.")
    assert final.finish_reason == "stop" and final.completion_tokens == len(seq)


def _pieces(dec: SequenceDecoder, ids: list[int]) -> tuple[str, list[str]]:
    text, pieces = [], []
    for t in ids:
        text += [c.text for c in dec.feed(t)]
        pieces.append(dec.piece)
    text.append(dec.finish("length").text)
    pieces[-1] += dec.piece
    return "".join(text), pieces


def test_first_token_keeps_its_leading_space_and_pieces_join(tok) -> None:
    from mlxk.engine.text.decoder import token_pieces

    ids = _ids(tok, " the cat sat")
    text, pieces = _pieces(SequenceDecoder(tok, []), ids)
    assert text == " the cat sat"  # mlx-lm's detokenizer alone gives "the cat sat"
    assert "".join(pieces) == text and len(pieces) == len(ids)
    assert token_pieces(tok, ids) == pieces


@pytest.fixture(scope="module")
def spm_tok(tmp_path_factory: pytest.TempPathFactory):
    """A SentencePiece-style tokenizer (``▁`` for spaces, byte fallback), as llama/mistral use."""
    import json

    from mlx_lm.utils import load_tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tk.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                    decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    tk.train_from_iterator(["the cat sat on the mat", "Paris is the capital of France"] * 20,
                           trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                               show_progress=False))
    d = tmp_path_factory.mktemp("spm")
    tk.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": False}))
    return load_tokenizer(d)


def test_sentencepiece_first_token_keeps_its_space(spm_tok) -> None:
    from mlxk.server.responses import token_text

    assert type(spm_tok.detokenizer).__name__ == "SPMStreamingDetokenizer"
    ids = [spm_tok.convert_tokens_to_ids("\u2581cat"), *_ids(spm_tok, "the cat")[1:]]
    text, pieces = _pieces(SequenceDecoder(spm_tok, []), ids)
    assert text.startswith(" cat") and "".join(pieces) == text
    assert token_text(spm_tok, ids[0]) == " cat"  # decode() alone strips it
