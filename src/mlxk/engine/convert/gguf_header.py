"""Read the tensor types out of a GGUF header (pure Python, no mlx).

``mx.load`` silently dequantizes block types it has no MLX layout for (K-quants,
IQ types) to float16; ``convert`` checks the header first so such files are
refused with a clear message instead of being blown up to float16.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from mlxk.errors import ValidationError

GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
              10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
              17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
              23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
              30: "BF16"}
SUPPORTED_TENSOR_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")
# Fixed-size GGUF metadata value types -> struct format.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def tensor_types(path: Path) -> dict[str, str]:
    """Tensor name -> GGML type name, read from the GGUF header (mlx would silently
    dequantize unsupported block types to float16, so we check before loading)."""
    with Path(path).open("rb") as f:
        def read(fmt: str) -> Any:
            size = struct.calcsize("<" + fmt)
            data = f.read(size)
            if len(data) != size:
                raise ValidationError(f"truncated GGUF header: {path}")
            return struct.unpack("<" + fmt, data)[0]

        def skip_string() -> None:
            f.seek(read("Q"), 1)

        def skip_value(vtype: int) -> None:
            if vtype in _GGUF_SCALARS:
                f.seek(struct.calcsize("<" + _GGUF_SCALARS[vtype]), 1)
            elif vtype == 8:
                skip_string()
            elif vtype == 9:
                item, count = read("I"), read("Q")
                if item in _GGUF_SCALARS:
                    f.seek(struct.calcsize("<" + _GGUF_SCALARS[item]) * count, 1)
                else:
                    for _ in range(count):
                        skip_value(item)
            else:
                raise ValidationError(f"unknown GGUF metadata type {vtype} in {path}")

        if f.read(4) != b"GGUF":
            raise ValidationError(f"not a GGUF file: {path}")
        version = read("I")
        if version < 2:
            raise ValidationError(f"GGUF version {version} is too old (need 2 or later)")
        n_tensors, n_kv = read("Q"), read("Q")
        for _ in range(n_kv):
            skip_string()
            skip_value(read("I"))
        types: dict[str, str] = {}
        for _ in range(n_tensors):
            name = f.read(read("Q")).decode("utf-8", "replace")
            f.seek(8 * read("I"), 1)
            gtype = read("I")
            read("Q")
            types[name] = GGML_TYPES.get(gtype, f"type {gtype}")
        return types


def check_tensor_types(path: Path) -> None:
    bad = {n: t for n, t in tensor_types(path).items() if t not in SUPPORTED_TENSOR_TYPES}
    if bad:
        kinds = ", ".join(sorted(set(bad.values())))
        first = next(iter(bad))
        raise ValidationError(
            f"unsupported GGUF tensor type(s) {kinds} (e.g. {first}); supported: "
            f"{', '.join(SUPPORTED_TENSOR_TYPES)}. Use a Q8_0/Q4_0/Q4_1/F16 GGUF of this model.")
