"""Model conversion: GGUF -> MLX directory (``gguf``) and the pure GGUF header reader (``gguf_header``)."""
