"""Fixtures for the hub area (loaded by tests/conftest.py)."""
