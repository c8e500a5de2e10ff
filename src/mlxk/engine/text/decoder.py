"""``SequenceDecoder``: token ids of one sequence -> text/reasoning ``Chunk``s.

Used by single-stream generation (``generate.stream``), by the server's batch
scheduler and by distributed ranks: feed every sampled token, stop generating
when ``finished`` is true, then call ``finish(reason)`` once for the final chunk.

It guarantees:
- an end-of-turn token (any eos id, ``<|im_end|>``, ``<|eot_id|>``, ``<|end|>``,
  ``<|return|>`` …) finishes the sequence and is never shown;
- other special tokens are never shown (harmony models hand their markup to the
  reasoning splitter, which consumes it);
- a user stop string in the answer text, even one spanning several tokens, finishes
  the sequence and neither it nor a partial match is ever emitted (a possible partial
  match is held back until it is decided); reasoning text is not searched;
- token counts are real: every fed token counts;
- the text is exactly the decoded tokens: mlx-lm's streaming detokenizers drop the
  first token's leading space (``" Paris"`` -> ``"Paris"``), which breaks
  ``prompt + completion`` and the logprob tokens; ``exact_detokenizer`` turns that off;
- ``piece`` is the raw text the last fed token released (after ``finish``: the text
  flushed at the end), so per-token logprob strings join to the decoded text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlxk.engine.text.reasoning import MarkerScanner, make_splitter
from mlxk.engine.types import Chunk


def exact_detokenizer(tokenizer: Any) -> Any:
    """A fresh streaming detokenizer that keeps the first token's leading space."""
    detok = tokenizer.detokenizer
    if hasattr(detok, "trim_space"):                 # SPM
        detok.trim_space = False
    if hasattr(detok, "_maybe_trim_space"):          # byte-level BPE
        detok._maybe_trim_space = _keep_space
    return detok


def _keep_space(text: str) -> str:
    return text


def token_pieces(tokenizer: Any, ids: Iterable[int]) -> list[str]:
    """The text each token of ``ids`` adds, exactly (leading spaces kept, a character split
    over tokens on the token that completes it); the pieces join to the decoded text."""
    if not hasattr(tokenizer, "detokenizer"):  # a plain tokenizer: token by token
        return [tokenizer.decode([int(t)]) for t in ids]
    detok = exact_detokenizer(tokenizer)
    detok.reset()
    pieces = []
    for t in ids:
        detok.add_token(int(t))
        pieces.append(detok.last_segment)
    detok.finalize()
    if pieces:
        pieces[-1] += detok.last_segment
    return pieces


class StopMatcher:
    """Finds user stop strings in streamed text, holding back possible partial matches."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.scanner = MarkerScanner(self.stops)
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """Text safe to emit; sets ``matched`` when a stop string completes."""
        if self.matched is not None:
            return ""
        if not self.stops:
            return text
        out = []
        for ev, value in self.scanner.feed(text):
            if ev == "marker":
                self.matched = value
                break
            out.append(value)
        return "".join(out)

    def flush(self) -> str:
        return "" if self.matched is not None else self.scanner.flush()


class SequenceDecoder:
    def __init__(self, tokenizer: Any, end_token_ids: Iterable[int], stop: Iterable[str] = (),
                 prompt_tokens: int = 0, reasoning_format: str | None = None,
                 start_in_reasoning: bool = False, hidden_token_ids: Iterable[int] = (),
                 marker_token_ids: Iterable[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.detok = exact_detokenizer(tokenizer)  # a fresh copy per sequence
        self.end_token_ids = frozenset(int(t) for t in end_token_ids)
        self.hidden_token_ids = frozenset(int(t) for t in hidden_token_ids)
        self.marker_token_ids = frozenset(int(t) for t in marker_token_ids)
        self.splitter = make_splitter(reasoning_format, start_in_reasoning)
        self.stops = StopMatcher(stop)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finished = False
        self.stop_reason: str | None = None    # "eos" | "stop_string"
        self.text = ""                         # everything emitted as answer
        self.reasoning = ""                    # everything emitted as reasoning
        self.piece = ""                        # raw text released by the last token (see module doc)

    # -- internals -------------------------------------------------------------------
    def _route(self, segment: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for kind, piece in self.splitter.feed(segment) if segment else []:
            chunks += self._piece(kind, piece)
        return chunks

    def _piece(self, kind: str, piece: str) -> list[Chunk]:
        if self.finished and self.stop_reason == "stop_string":
            return []
        if kind == "reasoning":
            self.reasoning += piece
            return [Chunk(reasoning=piece)]
        safe = self.stops.feed(piece)
        if self.stops.matched is not None:
            self.finished, self.stop_reason = True, "stop_string"
        if not safe:
            return []
        self.text += safe
        return [Chunk(text=safe)]

    def _drain(self) -> list[Chunk]:
        """Flush the detokenizer, the splitter and (unless a stop matched) held text."""
        self.detok.finalize()
        segment = self.detok.last_segment
        self.piece += segment
        chunks = self._route(segment)
        for kind, piece in self.splitter.flush():
            chunks += self._piece(kind, piece)
        rest = self.stops.flush()
        if rest:
            self.text += rest
            chunks.append(Chunk(text=rest))
        return chunks

    # -- public ----------------------------------------------------------------------
    def feed(self, token_id: int) -> list[Chunk]:
        self.piece = ""
        if self.finished:
            return []
        token_id = int(token_id)
        self.completion_tokens += 1
        if token_id in self.end_token_ids:
            chunks = self._drain()
            self.finished, self.stop_reason = True, self.stop_reason or "eos"
            return chunks
        if token_id in self.marker_token_ids:
            # Markup the reasoning splitter parses (harmony): flush pending text first
            # so the order is kept, then hand over the marker's own text.
            self.detok.finalize()
            segment = self.detok.last_segment
            self.detok.reset()
            self.piece = segment + self.tokenizer.decode([token_id])
            return self._route(self.piece)
        if token_id in self.hidden_token_ids:
            return []
        self.detok.add_token(token_id)
        self.piece = self.detok.last_segment
        return self._route(self.piece)

    def finish(self, reason: str) -> Chunk:
        """The final chunk: leftover text, ``finish_reason`` and token counts."""
        self.piece = ""
        chunks = [] if self.stop_reason else self._drain()
        self.finished = True
        if self.stop_reason:
            reason = "stop"
        final = Chunk(text="".join(c.text for c in chunks),
                      reasoning="".join(c.reasoning for c in chunks),
                      finish_reason=reason,  # type: ignore[arg-type]
                      prompt_tokens=self.prompt_tokens,
                      completion_tokens=self.completion_tokens)
        return final
