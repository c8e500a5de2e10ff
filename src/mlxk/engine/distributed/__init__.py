"""Distributed runs: the parent<->rank-0 line protocol, hosts and launch, the launcher-side session, the shard plan; ``rank/`` is the code that runs inside a rank."""
