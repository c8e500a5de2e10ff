"""Terminal rendering for `run`: streamed answers, reasoning blocks, interactive chat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

from mlxk.engine.types import Chunk
from mlxk.errors import MlxkError
from mlxk.output.console import Output
from mlxk.output.human import size_str

HELP_TEXT = """Commands:
  /help            show this help
  /clear           forget the conversation so far
  /system <text>   set the system prompt (and start over); /system alone clears it
  /image <path>    attach an image to your next message (vision models; repeatable)
  /exit            leave (also /quit, /bye, Ctrl-D)
Multi-line input: a line with \"\"\" starts it, another \"\"\" line ends it.
Ctrl-C stops the current answer; the session goes on."""
EXIT_COMMANDS = ("/exit", "/quit", "/bye")


class AnswerPrinter:
    """Writes chunks as they arrive; reasoning in a separated block (or hidden)."""

    def __init__(self, stream: TextIO, hide_reasoning: bool = False) -> None:
        self.out = stream
        self.hide_reasoning = hide_reasoning
        self.color = bool(getattr(stream, "isatty", lambda: False)())
        self.in_reasoning = False
        self.last = "\n"

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.last = text[-1]

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.color else text

    def reasoning(self, text: str) -> None:
        if self.hide_reasoning or not text:
            return
        if not self.in_reasoning:
            self._write(self._dim("Thinking...\n"))
            self.in_reasoning = True
        self._write(self._dim(text))

    def _end_reasoning(self) -> None:
        if self.in_reasoning:
            end = "" if self.last == "\n" else "\n"
            self._write(self._dim(end + "...done thinking.\n\n"))
            self.in_reasoning = False

    def text(self, text: str) -> None:
        if text:
            self._end_reasoning()
            self._write(text)

    def chunk(self, chunk: Chunk) -> None:
        self.reasoning(chunk.reasoning)
        self.text(chunk.text)

    def close(self) -> None:
        self._end_reasoning()
        if self.last != "\n":
            self._write("\n")


def print_stream(chunks: Iterator[Chunk], printer: AnswerPrinter) -> None:
    for chunk in chunks:
        printer.chunk(chunk)
    printer.close()


def print_answer(chunks: Iterator[Chunk], turn: Any, out: Output, model: str, *,
                 hide_reasoning: bool, no_stream: bool, verbose: bool, notice: bool = True) -> None:
    """Human output of one single-shot answer (streamed or whole); shared by local and distributed run."""
    printer = AnswerPrinter(out.stdout, hide_reasoning)
    if no_stream:
        for _ in chunks:
            pass
        printer.reasoning(turn.reasoning)
        printer.text(turn.text)
        printer.close()
    else:
        print_stream(chunks, printer)
    out.stdout.flush()
    if notice:
        cut_notice(turn, out)
    if verbose and turn.final is not None:
        out.info(verbose_line(turn.final, model))


def cut_notice_wanted(args: Any, out: Output) -> bool:
    """Say that an answer was cut when the default limit did it (the user may not know it), or
    when someone watches stderr; an explicit --max-tokens in a pipeline stays quiet."""
    return getattr(args, "max_tokens", None) is None or out.stderr.isatty()


def cut_notice(turn: Any, out: Output) -> None:
    """An answer stopped by --max-tokens says so (stderr, human mode), so nobody mistakes it for
    the whole answer."""
    final = turn.final
    if final is not None and final.finish_reason == "length" and not turn.interrupted:
        out.info(f"[answer cut at {final.completion_tokens} tokens (--max-tokens); "
                 f"give --max-tokens N for a longer one]")


def verbose_line(final: Chunk | None, model: str) -> str:
    t = (final.timing if final else None) or {}
    n_in = final.prompt_tokens if final else 0
    n_out = final.completion_tokens if final else 0
    return (f"{model}: load {t.get('load_s', 0.0):.2f}s | prompt {n_in} tokens, "
            f"{t.get('prompt_tps', 0.0):.1f} tok/s | generation {n_out} tokens, "
            f"{t.get('generation_tps', 0.0):.1f} tok/s | ttft {t.get('ttft_s', 0.0) * 1000:.0f} ms | "
            f"peak memory {size_str(int(t.get('peak_memory_bytes', 0)))}{_spec_part(t)}")


def _spec_part(t: dict[str, float]) -> str:
    """Speculative decoding (--draft-model, --prompt-lookup): drafted, accepted, their ratio."""
    if "draft_tokens" not in t:
        return ""
    return (f" | drafted {int(t['draft_tokens'])}, accepted {int(t.get('accepted_tokens', 0))} "
            f"({t.get('acceptance_rate', 0.0):.0%})")


def _readline(out: Output, prompt: str) -> str | None:
    """One line (without newline), None at end of input. Line editing on a terminal."""
    import sys

    if out.stdin is sys.stdin and out.stdout is sys.stdout and sys.stdin.isatty():
        try:
            import readline  # noqa: F401  (enables editing and history for input())
        except ImportError:
            pass
        try:
            return input(prompt)
        except EOFError:
            return None
    out.stdout.write(prompt)
    out.stdout.flush()
    line = out.stdin.readline()
    return line.rstrip("\n") if line else None


def read_message(out: Output, prompt: str = ">>> ") -> str | None:
    """One user message (multi-line between \"\"\" lines); None at end of input."""
    line = _readline(out, prompt)
    if line is None:
        return None
    if not line.strip().startswith('"""'):
        return line
    first = line.strip()[3:]
    if first.endswith('"""') and first:
        return first[:-3]
    lines = [first] if first else []
    while True:
        more = _readline(out, "... ")
        if more is None:
            break
        if more.strip().endswith('"""'):
            tail = more.rstrip()[:-3]
            if tail:
                lines.append(tail)
            break
        lines.append(more)
    return "\n".join(lines)


def _attach(session: Any, path: str, pending: list[Any], out: Output) -> None:
    """``/image PATH``: decode now (a bad file is reported, the chat goes on)."""
    from mlxk.operations.run import decode_images

    if not path:
        out.stdout.write("Usage: /image <path>\n")
        return
    try:
        pending.extend(decode_images(session.lm.name, session.lm.path, [path]))
    except MlxkError as exc:
        out.stderr.write(f"Error: {exc.message}\n")
        return
    out.stdout.write(f"Image attached ({len(pending)} for the next message).\n")


def chat_loop(session: Any, out: Output, model: str, hide_reasoning: bool, verbose: bool,
              images: list[Any] | None = None) -> int:
    """The interactive chat. Returns the exit code. ``images`` (``run --image`` without a
    prompt) go with the first message, as do images attached with ``/image``."""
    from mlxk.operations.run import Turn

    pending: list[Any] = list(images or [])
    out.stderr.write(f"Chatting with {model}. Type /help for commands, /exit to leave.\n")
    out.stderr.flush()
    while True:
        try:
            message = read_message(out)
        except KeyboardInterrupt:
            out.stdout.write("\n(Use /exit or Ctrl-D to leave)\n")
            continue
        if message is None:
            out.stdout.write("\n")
            return 0
        cmd = message.strip()
        if not cmd:
            continue
        if cmd.startswith("/"):
            word, _, rest = cmd.partition(" ")
            if word in EXIT_COMMANDS:
                return 0
            if word == "/help":
                out.stdout.write(HELP_TEXT + "\n")
            elif word == "/clear":
                session.clear()
                out.stdout.write("Conversation cleared.\n")
            elif word == "/image":
                _attach(session, rest.strip(), pending, out)
            elif word == "/system":
                session.set_system(rest.strip() or None)
                session.clear()
                out.stdout.write("System prompt set; conversation cleared.\n" if rest.strip()
                                 else "System prompt removed; conversation cleared.\n")
            else:
                out.stdout.write(f"Unknown command {word}; /help lists the commands.\n")
            out.stdout.flush()
            continue
        turn = Turn()
        printer = AnswerPrinter(out.stdout, hide_reasoning)
        attached, pending = pending, []
        chunks = session.ask(message, turn, attached)
        try:
            print_stream(chunks, printer)
        except KeyboardInterrupt:
            chunks.close()
            printer.close()
            out.stdout.write("[answer stopped]\n")
        except MlxkError as exc:
            printer.close()
            out.stderr.write(f"Error: {exc.message}\n")
            if exc.extra.get("code") == "context_length_exceeded":
                out.stderr.write("The conversation no longer fits the context; /clear starts over.\n")
        out.stdout.flush()
        cut_notice(turn, out)
        if verbose and turn.final is not None:
            out.stderr.write(verbose_line(turn.final, model) + "\n")
            out.stderr.flush()
