"""The only package that imports mlx / mlx_lm. Import its modules lazily, inside functions."""
