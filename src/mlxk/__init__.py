"""mlx-knife: manage and run MLX models from the HuggingFace cache.

Importing this package is cheap and side-effect free: it never imports mlx,
mlx-lm, transformers or torch. The engine is imported lazily by the commands
that need it.
"""

__version__ = "2.0.0"
JSON_API_SPEC_VERSION = "0.2.0"

__all__ = ["JSON_API_SPEC_VERSION", "__version__"]
