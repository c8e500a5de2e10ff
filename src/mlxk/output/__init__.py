"""The only code that writes to stdout/stderr for the CLI."""
