"""Run the real CLI in a subprocess, with the test's environment (temporary HF_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"


def mlxk_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def mlxk_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlxk", *args]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def run_mlxk(*args: str, env: dict[str, str] | None = None, input: str | None = None,
             timeout: float = 300, cwd: Path | None = None) -> Result:
    """``mlxk ARGS`` as a real process; returns exit code and captured output."""
    proc = subprocess.run(mlxk_argv(*args), env=mlxk_env(env), input=input, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr)
