"""Test utilities: cache builders, CLI runners, a local Hub server, model fixtures."""
