"""The local HuggingFace cache: disk only, no network, no mlx."""
