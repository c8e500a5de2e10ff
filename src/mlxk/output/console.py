"""``Output``: renders a command's result in human or JSON mode, and owns confirmation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from mlxk.errors import MlxkError, RequiresConfirmation
from mlxk.output import envelope


def valid_utf8(text: str) -> str:
    """Bytes of a file name that are not UTF-8 (``models--te\\xffst--x``) reach Python as lone
    surrogates; writing them would emit invalid UTF-8 (or fail). They become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class Output:
    """One per command invocation. Commands hand it data; it decides how to show it."""

    def __init__(self, command: str, json_mode: bool,
                 stdout: TextIO | None = None, stderr: TextIO | None = None,
                 stdin: TextIO | None = None) -> None:
        self.command = command
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.stdin = stdin or sys.stdin

    # results -----------------------------------------------------------------
    def result(self, data: Any, human: Callable[[Any], str | None] | None = None) -> None:
        """Print ``data``: the JSON envelope, or ``human(data)`` as text."""
        if self.json_mode:
            self.json(envelope.success(self.command, data))
        elif human is not None:
            text = human(data)
            if text:
                self.text(text)

    def json(self, obj: Any) -> None:
        self.stdout.write(valid_utf8(json.dumps(obj, ensure_ascii=False)) + "\n")
        self.stdout.flush()

    def text(self, text: str) -> None:
        text = valid_utf8(text)
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        """Progress/diagnostic text for humans; goes to stderr so stdout stays data."""
        if not self.json_mode:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def warn(self, text: str) -> None:
        self.stderr.write(f"{self.command}: Warning: {text}\n")
        self.stderr.flush()

    def error(self, exc: MlxkError, traceback_text: str | None = None) -> None:
        if self.json_mode:
            self.json(envelope.failure(self.command, exc))
        else:
            self.stderr.write(f"{self.command}: Error: {exc.message}\n")
            matches = exc.extra.get("matches")
            if matches:
                self.stderr.write("  matches:\n" + "".join(f"    {m}\n" for m in matches))
        if traceback_text:
            self.stderr.write(traceback_text)
        self.stderr.flush()

    def read_stdin(self) -> str:
        """All of stdin as text; input that is not UTF-8 is a ``ValidationError`` that says so
        (instead of a decoding failure deep inside a tokenizer)."""
        from mlxk.errors import ValidationError

        buf = getattr(self.stdin, "buffer", None)
        raw = buf.read() if buf is not None else self.stdin.read()
        if isinstance(raw, str):
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"stdin is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                "convert it first, e.g. with 'iconv -f latin1 -t utf-8'") from None

    # interaction -------------------------------------------------------------
    def can_prompt(self) -> bool:
        return not self.json_mode and self.stdin.isatty() and self.stderr.isatty()

    def confirm(self, question: str, refusal: str) -> bool:
        """Ask ``question [y/N]`` on a TTY; raise ``RequiresConfirmation(refusal)`` when we cannot ask."""
        if not self.can_prompt():
            raise RequiresConfirmation(refusal)
        self.stderr.write(f"{question} [y/N] ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        return answer in ("y", "yes")
