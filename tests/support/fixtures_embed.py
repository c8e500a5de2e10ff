"""Fixtures for the embed area (loaded by tests/conftest.py)."""
