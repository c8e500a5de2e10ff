"""Images in requests: every dialect's image field becomes the engine's image part.

Two steps, so every dialect shares the checks:

1. A translator (OpenAI chat, and the other dialects) turns its wire form into a
   *pending* part, ``{"type": "image", "pending": (kind, value), "label": ...}``
   with ``kind`` ``"url"`` (a data URI or an http(s) URL) or ``"base64"``; nothing
   is decoded yet and no model is needed.
2. Once the model is known, ``resolve`` checks that it takes images (a text-only
   model refuses them before anything is decoded) and how many, then decodes each
   part into ``{"type": "image", "image": <PIL.Image>}`` (a 400 naming the part
   when it is not an image). http(s) URLs are fetched only with
   ``serve --allow-image-urls`` (size limit, timeout), because a server that
   fetches URLs for its clients can be made to reach hosts they cannot (SSRF).
   ``resolve`` blocks (decoding, fetching): call it in a thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlxk import config
from mlxk.engine.types import GenerationRequest
from mlxk.errors import ValidationError


def pending(kind: str, value: Any, label: str) -> dict[str, Any]:
    """An image part still in its wire form (``kind``: ``"url"`` or ``"base64"``)."""
    return {"type": "image", "pending": (kind, value), "label": label}


def _is_pending(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "image" and "pending" in part


def count_pending(messages: list[dict[str, Any]] | None) -> int:
    return sum(1 for m in messages or [] if isinstance(m.get("content"), list)
               for p in m["content"] if _is_pending(p))


def check_model_takes_images(lm: Any, n_images: int, param: str = "messages") -> None:
    from mlxk.engine.choose import is_vision, refuse_images

    if not n_images:
        return
    if not is_vision(lm):
        refuse_images(getattr(lm, "name", "this model"), getattr(lm, "path", None), n_images)
    limit = getattr(lm, "max_images", config.MAX_IMAGES_PER_REQUEST)
    if n_images > limit:
        raise ValidationError(f"{n_images} images in one request; the limit is {limit}",
                              param=param, code="too_many_images")


def decode_part(part: dict[str, Any], *, allow_urls: bool, param: str = "messages") -> dict[str, Any]:
    from mlxk.engine.vision import images

    kind, value = part["pending"]
    label = part.get("label") or "image"
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{label}: the image must be a non-empty string", param=param)
    if kind == "base64" and not value.startswith("data:"):
        return {"type": "image", "image": images.from_base64(value, label, param=param)}
    if value.startswith("data:"):
        return {"type": "image", "image": images.from_data_uri(value, label, param=param)}
    if kind == "url" and value.startswith(("http://", "https://")):
        if not allow_urls:
            raise ValidationError(f"{label}: image URLs are disabled on this server; send the image "
                                  "as base64 (a data URI: data:image/png;base64,...), or start the "
                                  "server with --allow-image-urls", param=param,
                                  code="image_urls_disabled")
        return {"type": "image", "image": images.fetch(
            value, label, param=param, timeout_s=config.IMAGE_URL_TIMEOUT_SECONDS)}
    raise ValidationError(f"{label}: an image must be a base64 data URI or an http(s) URL",
                          param=param)


def resolve(gen: GenerationRequest, lm: Any, *, allow_urls: bool,
            param: str = "messages") -> GenerationRequest:
    """``gen`` with every pending image decoded, after checking ``lm`` takes that many."""
    n = count_pending(gen.messages)
    if not n:
        return gen
    check_model_takes_images(lm, n, param)
    messages = []
    for m in gen.messages or []:
        content = m.get("content")
        if isinstance(content, list) and any(_is_pending(p) for p in content):
            content = [decode_part(p, allow_urls=allow_urls, param=param) if _is_pending(p) else p
                       for p in content]
            m = {**m, "content": content}
        messages.append(m)
    return replace(gen, messages=messages)


def openai_image_url(part: dict[str, Any]) -> Any:
    """The URL of an OpenAI ``image_url`` part (an object with ``url``, or a bare string)."""
    value = part.get("image_url")
    return value.get("url") if isinstance(value, dict) else value


def anthropic_image(block: dict[str, Any], label: str) -> dict[str, Any]:
    """An Anthropic ``image`` block: ``source`` ``{"type": "base64", "data"}`` or ``{"type": "url"}``."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        return pending("base64", source.get("data"), label)
    if kind == "url":
        return pending("url", source.get("url"), label)
    raise ValidationError(f"{label}: image source type {kind!r} is not supported (base64 or url)",
                          param="messages")


def responses_image(part: dict[str, Any], label: str) -> dict[str, Any]:
    """An OpenAI Responses ``input_image`` part (``image_url``: a data URI or an http(s) URL)."""
    if part.get("file_id") and not part.get("image_url"):
        raise ValidationError(f"{label}: file_id images are not supported (this server keeps no "
                              "files); send image_url with a data URI", param="input")
    return pending("url", part.get("image_url"), label)


def ollama_images(values: Any, label: str) -> list[dict[str, Any]]:
    """Ollama's ``images``: a list of base64 strings."""
    if not isinstance(values, list):
        raise ValidationError(f"{label} must be a list of base64 strings", param="messages")
    return [pending("base64", v, f"{label}[{i}]") for i, v in enumerate(values)]


def with_text(parts: list[dict[str, Any]], text: str) -> Any:
    """Message content: ``text`` alone, or image parts followed by the text."""
    return [*parts, {"type": "text", "text": text}] if parts else text
