"""Decoded text: token ids -> text chunks, reasoning/answer splitting, stop strings. Pure: no mlx."""
