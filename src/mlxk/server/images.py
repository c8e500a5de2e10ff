"""Images in requests: every dialect's image field becomes the engine's image part.

The engine takes ``{"type": "image", "image": <PIL.Image>}`` content parts.
Here the wire forms are turned into those parts, with the checks a server
needs: a text-only model refuses images before anything is decoded; base64
and data URIs are decoded and verified (a 400 naming the part when they are
not an image); http(s) URLs are fetched only with ``serve --allow-image-urls``
(size limit, timeout), because a server that fetches URLs for its clients can
be made to reach hosts they cannot (SSRF).
"""

from __future__ import annotations

from typing import Any

from mlxk import config
from mlxk.errors import ValidationError


def check_model_takes_images(lm: Any, n_images: int) -> None:
    from mlxk.engine.choose import is_vision, refuse_images

    if n_images and not is_vision(lm):
        refuse_images(getattr(lm, "name", "this model"), getattr(lm, "path", None), n_images)
    if n_images > getattr(lm, "max_images", config.MAX_IMAGES_PER_REQUEST):
        raise ValidationError(f"{n_images} images in one request; the limit is "
                              f"{getattr(lm, 'max_images', config.MAX_IMAGES_PER_REQUEST)}",
                              param="messages", code="too_many_images")


def from_url(url: Any, *, allow_urls: bool, label: str, param: str = "messages") -> dict[str, Any]:
    """A data URI, or an http(s) URL when the server allows fetching."""
    from mlxk.engine.vision import images

    if not isinstance(url, str) or not url:
        raise ValidationError(f"{label}: the image URL must be a non-empty string", param=param)
    if url.startswith("data:"):
        return {"type": "image", "image": images.from_data_uri(url, label, param=param)}
    if url.startswith(("http://", "https://")):
        if not allow_urls:
            raise ValidationError(f"{label}: image URLs are disabled on this server; send the image "
                                  "as a base64 data URI (data:image/png;base64,...), or start the "
                                  "server with --allow-image-urls", param=param,
                                  code="image_urls_disabled")
        return {"type": "image", "image": images.fetch(url, label, param=param,
                                                       timeout_s=config.IMAGE_URL_TIMEOUT_SECONDS)}
    raise ValidationError(f"{label}: an image URL must be a data URI or an http(s) URL",
                          param=param)


def from_base64(data: Any, *, label: str, param: str = "messages") -> dict[str, Any]:
    from mlxk.engine.vision import images

    if not isinstance(data, str):
        raise ValidationError(f"{label}: the image data must be a base64 string", param=param)
    if data.startswith("data:"):
        return {"type": "image", "image": images.from_data_uri(data, label, param=param)}
    return {"type": "image", "image": images.from_base64(data, label, param=param)}


def openai_image_url(part: dict[str, Any]) -> Any:
    """The URL of an OpenAI ``image_url`` part (an object with ``url``, or a bare string)."""
    value = part.get("image_url")
    return value.get("url") if isinstance(value, dict) else value
