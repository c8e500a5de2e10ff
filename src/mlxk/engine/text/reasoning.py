"""Split a model's decoded text into reasoning and answer. Pure Python, no mlx.

Two families:

* ``think``: ``<think>…</think>`` blocks (DeepSeek-R1, Qwen3, SmolLM3 …). Templates
  that open the block themselves (the prompt ends with ``<think>``) start the
  splitter inside reasoning (``start_in_reasoning=True``).
* ``harmony``: GPT-OSS channels, parsed from the model's own decoded text
  (``<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…``).
  ``analysis`` is reasoning; ``final`` (and ``commentary``) is answer text.

Text arrives in arbitrary pieces, so a marker may be split across pieces: the
scanner holds back any suffix that could still become a marker, and never emits
a marker or a part of one.
"""

from __future__ import annotations

from collections.abc import Iterable

Piece = tuple[str, str]  # (kind, text), kind in {"text", "reasoning"}

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_MAX_BARE_HEADER = 40
HARMONY_MARKERS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>",
                   "<|call|>", "<|constrain|>")


def held_suffix(text: str, markers: Iterable[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some marker."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


class MarkerScanner:
    """Turns a stream of text pieces into ``("text", s)`` and ``("marker", m)`` events."""

    def __init__(self, markers: Iterable[str]) -> None:
        self.markers = tuple(m for m in markers if m)
        self.buf = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.buf += text
        events: list[tuple[str, str]] = []
        while self.buf:
            hits = [(self.buf.find(m), -len(m), m) for m in self.markers if m in self.buf]
            if not hits:
                break
            idx, _, marker = min(hits)
            if idx:
                events.append(("text", self.buf[:idx]))
            events.append(("marker", marker))
            self.buf = self.buf[idx + len(marker):]
        keep = held_suffix(self.buf, self.markers)
        emit = self.buf[: len(self.buf) - keep]
        if emit:
            events.append(("text", emit))
        self.buf = self.buf[len(self.buf) - keep:]
        return events

    def flush(self) -> str:
        rest, self.buf = self.buf, ""
        return rest


def _merge(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for kind, text in pieces:
        if not text:
            continue
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


class PlainSplitter:
    """No reasoning format: everything is answer text."""

    def feed(self, text: str) -> list[Piece]:
        return [("text", text)] if text else []

    def flush(self) -> list[Piece]:
        return []


class ThinkSplitter:
    """``<think>…</think>``; whitespace right after a tag is dropped."""

    def __init__(self, start_in_reasoning: bool = False,
                 open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE) -> None:
        self.scanner = MarkerScanner((open_tag, close_tag))
        self.open_tag, self.close_tag = open_tag, close_tag
        self.kind = "reasoning" if start_in_reasoning else "text"
        self.strip = start_in_reasoning   # drop leading whitespace of the next text
        self.seen_text = False

    def _text(self, text: str) -> list[Piece]:
        if self.strip:
            text = text.lstrip()
            if not text:
                return []
            self.strip = False
        return [(self.kind, text)]

    def _events(self, events: list[tuple[str, str]]) -> list[Piece]:
        out: list[Piece] = []
        for ev, value in events:
            if ev == "text":
                out += self._text(value)
            elif value == self.open_tag:
                self.kind, self.strip = "reasoning", True
            else:
                self.kind, self.strip = "text", True
        return _merge(out)

    def feed(self, text: str) -> list[Piece]:
        return self._events(self.scanner.feed(text))

    def flush(self) -> list[Piece]:
        return _merge(self._text(self.scanner.flush()))


class HarmonySplitter:
    """GPT-OSS harmony channels. The prompt ends with ``<|start|>assistant``, so the
    model's output begins with a header (``<|channel|>analysis``) and then a message."""

    def __init__(self) -> None:
        self.scanner = MarkerScanner(HARMONY_MARKERS)
        self.state = "header"          # header | message
        self.header = ""
        self.kind = "text"

    def _channel_kind(self) -> str:
        head = self.header
        if "<|channel|>" in head:
            head = head.split("<|channel|>", 1)[1]
        channel = head.strip().split(" ", 1)[0].split("<", 1)[0]
        return "reasoning" if channel == "analysis" else "text"

    def _events(self, events: list[tuple[str, str]]) -> list[Piece]:
        out: list[Piece] = []
        for ev, value in events:
            if self.state == "header":
                if ev == "marker" and value == "<|message|>":
                    self.kind = self._channel_kind()
                    self.state, self.header = "message", ""
                elif ev == "marker" and value == "<|start|>":
                    self.header = ""
                else:
                    self.header += value
                    if "<|channel|>" not in self.header and len(self.header) > _MAX_BARE_HEADER:
                        # Not harmony after all: show what the model wrote as answer text.
                        out.append(("text", self.header))
                        self.state, self.kind, self.header = "message", "text", ""
            elif ev == "text":
                out.append((self.kind, value))
            elif value in ("<|end|>", "<|return|>", "<|call|>", "<|start|>"):
                self.state, self.header = "header", ""
        return _merge(out)

    def feed(self, text: str) -> list[Piece]:
        return self._events(self.scanner.feed(text))

    def flush(self) -> list[Piece]:
        rest = self.scanner.flush()
        if self.state == "message":
            return [(self.kind, rest)] if rest else []
        bare = self.header + rest
        self.header = ""
        return [("text", bare)] if bare.strip() and "<|channel|>" not in bare else []


def make_splitter(fmt: str | None, start_in_reasoning: bool = False) -> PlainSplitter | ThinkSplitter | HarmonySplitter:
    if fmt == "think":
        return ThinkSplitter(start_in_reasoning=start_in_reasoning)
    if fmt == "harmony":
        return HarmonySplitter()
    return PlainSplitter()


def split_text(text: str, fmt: str | None, start_in_reasoning: bool = False) -> tuple[str, str]:
    """``(reasoning, answer)`` of a complete text (convenience for non-streaming callers)."""
    s = make_splitter(fmt, start_in_reasoning)
    pieces = s.feed(text) + s.flush()
    return ("".join(t for k, t in pieces if k == "reasoning"),
            "".join(t for k, t in pieces if k == "text"))


class ThinkBudget:
    """A thinking budget for ``think`` models, token by token. Pure: no mlx.

    ``feed`` every generated token id; ``forced()`` is the token id the next step must be
    (or None): once ``budget`` tokens were generated inside a ``<think>`` block, the ids of
    ``</think>`` are forced one by one, so the block holds at most ``budget`` tokens and the
    model goes on with its answer. A block the model closes itself ends the count; a block
    it opens again starts a fresh one (each block gets the budget). Tags are token-id
    sequences (usually one added token each).
    """

    def __init__(self, budget: int, open_ids: list[int], close_ids: list[int],
                 in_reasoning: bool = False) -> None:
        if budget < 0 or not close_ids:
            raise ValueError("a thinking budget needs budget >= 0 and the ids of the closing tag")
        self.budget, self.open_ids, self.close_ids = budget, list(open_ids), list(close_ids)
        self.in_reasoning = in_reasoning
        self.count = 0                  # tokens inside the current block
        self.closing = 0                # how many close ids were forced so far (0: not closing)
        self._tail: list[int] = []
        self.forced_closes = 0          # blocks this budget ended

    def _ends_with(self, tag: list[int]) -> bool:
        return bool(tag) and self._tail[-len(tag):] == tag

    def feed(self, token_id: int) -> None:
        keep = max(len(self.open_ids), len(self.close_ids), 1)
        self._tail = [*self._tail, token_id][-keep:]
        if self.closing:
            self.closing += 1
            if self.closing > len(self.close_ids):
                self.closing, self.in_reasoning, self.count = 0, False, 0
            return
        if self.in_reasoning:
            if self._ends_with(self.close_ids):
                self.in_reasoning, self.count = False, 0
            else:
                self.count += 1
        elif self._ends_with(self.open_ids):
            self.in_reasoning, self.count = True, 0

    def forced(self) -> int | None:
        if self.closing:
            return self.close_ids[self.closing - 1] if self.closing <= len(self.close_ids) else None
        if self.in_reasoning and self.count >= self.budget:
            self.closing = 1
            self.forced_closes += 1
            return self.close_ids[0]
        return None
