"""Entry point of one rank of `run --hosts` / `serve --hosts`: ``python -m mlxk.operations.rank SPEC_JSON``.

The rank's own code is the engine's (``engine.distributed.rank.worker``); this module only
joins it to the HTTP server rank 0 runs for `serve --hosts` (``server.distributed``), so the
engine never imports the server.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from mlxk.engine.distributed.rank import worker
    from mlxk.server.distributed import serve_lead

    return worker.main(argv, serve_http=serve_lead)


if __name__ == "__main__":
    main()
