"""Read safetensors headers (8-byte little-endian length + JSON), never the tensor data."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

MAX_HEADER_BYTES = 100 * 1024 * 1024
FIRST_READ = 64 * 1024


class HeaderError(ValueError):
    """The file is not a readable safetensors file."""


@dataclass(frozen=True)
class Header:
    tensors: dict[str, dict]      # name -> {"dtype", "shape", "data_offsets"}
    metadata: dict[str, str]
    header_len: int
    expected_size: int            # 8 + header_len + end of the last tensor
    actual_size: int

    @property
    def truncated(self) -> bool:
        return self.actual_size < self.expected_size

    @property
    def format(self) -> str | None:
        return self.metadata.get("format")


def read_header(path: str | Path) -> Header:
    """Parse the header of ``path``; raise ``HeaderError`` when it is unreadable.

    Raw file-descriptor reads, usually a single one (no buffered file object):
    this runs for every safetensors file of every model on each ``list``.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise HeaderError(exc.strerror or str(exc)) from exc
    try:
        actual = os.fstat(fd).st_size
        first = os.read(fd, FIRST_READ)  # header and length in one read for typical files
        if len(first) < 8:
            raise HeaderError("file shorter than 8 bytes")
        (n,) = struct.unpack("<Q", first[:8])
        if n == 0 or n > MAX_HEADER_BYTES:
            raise HeaderError(f"implausible header length {n}")
        raw = first[8 : 8 + n]
        while len(raw) < n:
            more = os.read(fd, n - len(raw))
            if not more:
                break
            raw += more
    except OSError as exc:
        raise HeaderError(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if len(raw) < n:
        raise HeaderError(f"header cut short ({len(raw)} of {n} bytes)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HeaderError("header is not valid JSON") from exc
    if not isinstance(data, dict):
        raise HeaderError("header is not a JSON object")
    meta = data.pop("__metadata__", None) or {}
    try:
        ends = [info["data_offsets"] for info in data.values()]
        end = max((int(e[1]) for e in ends), default=0)
        if any(not (0 <= int(e[0]) <= int(e[1])) for e in ends):
            raise HeaderError("bad tensor offsets")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HeaderError("bad tensor entry") from exc
    return Header(data, meta if isinstance(meta, dict) else {}, n, 8 + n + end, actual)


def count_parameters(headers: list[Header], config: dict | None = None) -> int:
    """Number of model parameters, counting packed quantized weights at their logical size."""
    quant = (config or {}).get("quantization") or (config or {}).get("quantization_config") or {}
    default_bits = int(quant.get("bits", 4)) if isinstance(quant, dict) else 4
    names: set[str] = set()
    for h in headers:
        names.update(h.tensors)
    total = 0
    for h in headers:
        for name, info in h.tensors.items():
            shape = [int(d) for d in info.get("shape", [])]
            base = name.rsplit(".", 1)[0]
            quantized = f"{base}.scales" in names
            if quantized and name.endswith((".scales", ".biases")):
                continue
            if quantized and name.endswith(".weight") and info.get("dtype") in ("U32", "U8", "I32"):
                bits = default_bits
                layer = quant.get(base) if isinstance(quant, dict) else None
                if isinstance(layer, dict) and "bits" in layer:
                    bits = int(layer["bits"])
                per = {"U32": 32, "I32": 32, "U8": 8}[info["dtype"]] // max(bits, 1)
                total += prod(shape) * per
            else:
                total += prod(shape) if shape else 1
    return total
