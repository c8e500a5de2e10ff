"""A float Hugging Face checkpoint (safetensors) -> an MLX model directory, written by mlx-lm.

The work is ``mlx_lm.convert.convert`` itself, so the tensors, ``config.json`` and the
tokenizer files are exactly what ``mlx_lm.convert`` writes with the same settings; we
only route its ``[INFO]`` lines to a progress callback (stdout stays for the JSON
envelope) and translate its errors.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlxk.errors import ExecutionError, ValidationError


@dataclass(frozen=True)
class Quantization:
    """Settings already checked by ``cache.runtime.quant_settings``."""

    bits: int
    group_size: int
    mode: str


class _Lines(io.TextIOBase):
    """A text stream that hands every complete line to ``emit`` (for redirect_stdout)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                self._emit(line.removeprefix("[INFO] ").strip())
        return len(text)


def mlx_lm_version() -> str:
    from importlib.metadata import version

    return version("mlx-lm")


def convert_checkpoint(source: Path, output: Path, quant: Quantization | None, dtype: str | None,
                       progress: Callable[[str], None]) -> None:
    """Write the MLX version of the checkpoint in ``source`` to ``output`` (which must not exist).

    Raises:
        ValidationError: mlx-lm cannot build this checkpoint.
        ExecutionError: the conversion failed while writing.
    """
    from mlx_lm.convert import convert

    kwargs = {"quantize": quant is not None, "dtype": dtype}
    if quant is not None:
        kwargs.update(q_bits=quant.bits, q_group_size=quant.group_size, q_mode=quant.mode)
    try:
        with contextlib.redirect_stdout(_Lines(progress)):
            convert(str(source), str(output), **kwargs)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ValidationError(f"mlx-lm cannot convert {source}: {exc}") from exc
    except OSError as exc:
        raise ExecutionError(f"cannot write {output}: {exc}") from exc

