"""`python -m mlxk` runs the CLI."""

from mlxk.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
