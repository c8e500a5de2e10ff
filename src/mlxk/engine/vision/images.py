"""Image inputs: bytes, files, data URIs and (when the server allows it) http(s) URLs.

Every input becomes a decoded RGB ``PIL.Image`` here, before any model work, so
bad input (not an image, a format PIL cannot read, a truncated file, too large)
is a ``ValidationError`` naming the image, never a failure halfway through a
generation. Decoding follows mlx-vlm's own ``load_image`` (EXIF orientation,
then RGB) so the pixels match what ``mlx_vlm.generate`` sees for the same file.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from mlxk.errors import ValidationError

MAX_IMAGE_BYTES = 20 * 1024 * 1024        # one image, encoded
MAX_IMAGE_PIXELS = 50_000_000             # decoded; PIL's own bomb guard is larger


def decode(data: bytes, label: str, param: str | None = None) -> Any:
    """``data`` (an encoded image) -> RGB ``PIL.Image``; ValidationError when it is not one."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ValidationError(f"{label} is empty", param=param)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValidationError(f"{label} is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}",
                              param=param)
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValidationError(f"{label} is {img.width}x{img.height} pixels; the limit is "
                                  f"{MAX_IMAGE_PIXELS} pixels", param=param)
        img.load()
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")
    except ValidationError:
        raise
    except UnidentifiedImageError as exc:
        raise ValidationError(f"{label} is not an image PIL can read", param=param) from exc
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValidationError(f"{label} could not be decoded: {exc}", param=param) from exc


def from_path(path: str | Path) -> Any:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValidationError(f"image file not found: {path}", param="image")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read image {path}: {exc}", param="image") from exc
    return decode(data, f"image {path}", param="image")


def from_base64(text: str, label: str, param: str | None = None) -> Any:
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(f"{label} is not valid base64", param=param) from exc
    return decode(data, label, param=param)


def from_data_uri(uri: str, label: str, param: str | None = None) -> Any:
    head, sep, payload = uri.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise ValidationError(f"{label} must be a base64 data URI (data:image/...;base64,...)",
                              param=param)
    return from_base64(payload, label, param=param)


def fetch(url: str, label: str, *, timeout_s: float, max_bytes: int = MAX_IMAGE_BYTES,
          param: str | None = None) -> Any:
    """Download an http(s) image (the server only calls this with ``--allow-image-urls``)."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise ValidationError(f"{label}: fetching {url} gave HTTP {resp.status_code}",
                                      param=param)
            chunks, total = [], 0
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise ValidationError(f"{label}: {url} is larger than {max_bytes} bytes",
                                          param=param)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise ValidationError(f"{label}: cannot fetch {url}: {type(exc).__name__}",
                              param=param) from exc
    return decode(b"".join(chunks), label, param=param)
