"""The main job of `make demo` (filled in by the run/convert work)."""

print("demo: not yet implemented")
