"""Code that runs inside one rank of a distributed run (started as ``python -m mlxk.engine.distributed.rank.worker``)."""
