"""Fixtures of the distributed tests live in tests/support/dist_procs.py."""

from tests.support.dist_procs import dist_cache, dist_model_dirs  # noqa: F401
