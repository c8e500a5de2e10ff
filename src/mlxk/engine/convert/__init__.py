"""Model conversion: GGUF -> MLX directory (``gguf``, with the pure header reader ``gguf_header``),
and float HF checkpoints -> MLX through mlx-lm's own converter (``checkpoint``)."""
