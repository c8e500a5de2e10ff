"""Fixtures for the cache area (loaded by tests/conftest.py)."""
