"""Fixtures for the models area (loaded by tests/conftest.py)."""
