"""Structured output and tool calling: the plan (``plan``), the grammar processor (``grammar``, imports mlx) and the tool-call formats (``tools``, pure)."""
