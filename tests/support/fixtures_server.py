"""Fixtures for the server area (loaded by tests/conftest.py)."""
