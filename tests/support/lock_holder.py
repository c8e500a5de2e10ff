"""Hold a huggingface_hub-style download lock in a REAL second process.

``python -m tests.support.lock_holder LOCKFILE`` takes the lock with huggingface_hub's
own ``WeakFileLock`` (filelock/flock underneath), prints ``locked`` and holds it
until stdin closes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cli import mlxk_env


@contextmanager
def held_lock(lock_file: Path) -> Iterator[subprocess.Popen]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.lock_holder", str(lock_file)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=mlxk_env(),
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "locked", f"lock holder failed: {line!r}"
        yield proc
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)


def main() -> None:
    from huggingface_hub.utils import WeakFileLock

    with WeakFileLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
