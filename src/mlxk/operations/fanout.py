"""Spread a pure, CPU-bound map over the machine's cores with ``fork`` (POSIX only).

Used by ``list`` on large caches: each child evaluates a slice of the repos and
sends back JSON through a pipe. Falls back to a plain loop when fork is not
available or not safe (other threads running, few items, one core).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

MIN_ITEMS = 400          # below this, forking costs more than it saves


def _workers(n_items: int) -> int:
    if not hasattr(os, "fork") or sys.platform == "win32":
        return 1
    if threading.active_count() > 1 or threading.current_thread() is not threading.main_thread():
        return 1  # never fork a multi-threaded process
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8, n_items // (MIN_ITEMS // 2)))


def fan_out(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]``; results must be JSON-serialisable."""
    workers = _workers(len(items)) if len(items) >= MIN_ITEMS else 1
    if workers <= 1:
        return [fn(x) for x in items]
    chunks = [items[i::workers] for i in range(workers)]
    children: list[tuple[int, int]] = []
    for chunk in chunks[1:]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, write, leave without running any cleanup handlers
            os.close(r)
            code = 0
            try:
                data = json.dumps([fn(x) for x in chunk]).encode()
                with os.fdopen(w, "wb") as out:
                    out.write(data)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    results: list[list[Any]] = [[fn(x) for x in chunks[0]]]
    failed = False
    for pid, r in children:
        with os.fdopen(r, "rb") as f:
            raw = f.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not raw:
            failed = True
            results.append([])
        else:
            results.append(json.loads(raw))
    if failed:  # a child died: do its share here rather than return a partial answer
        return [fn(x) for x in items]
    out: list[Any] = [None] * len(items)
    for w, res in enumerate(results):
        out[w::workers] = res
    return out
