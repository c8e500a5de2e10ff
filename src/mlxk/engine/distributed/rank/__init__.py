"""Code that runs inside one rank of a distributed run (entry point: ``python -m mlxk.operations.rank``)."""
