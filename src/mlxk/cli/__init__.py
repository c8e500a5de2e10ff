"""The command-line front end: argument parsing and one handler per command."""
