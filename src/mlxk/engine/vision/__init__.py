"""Vision-language models through mlx-vlm (the optional ``vision`` extra).

``images`` decodes and checks image inputs (PIL only), ``loader`` loads a model
and its processor, ``generate`` renders a chat with images and streams the same
``Chunk``s as the text engine, ``scheduler`` serves one model in the server's pool.
Nothing here is imported by the management commands.
"""

from __future__ import annotations

from mlxk.errors import NotRuntimeCompatible

EXTRA_HINT = 'pip install "mlx-knife[vision]"'


def require() -> None:
    """Raise a clear error naming the extra when mlx-vlm is not installed."""
    try:
        import mlx_vlm  # noqa: F401
    except ImportError as exc:
        raise NotRuntimeCompatible(
            f"images need the vision extra (mlx-vlm), which is not installed: {EXTRA_HINT}"
        ) from exc
