"""Text embeddings: what a model's files say (``config``, pure) and the MLX encoder (``encoder``, imports mlx)."""
