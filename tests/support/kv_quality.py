"""What the KV-cache quality tests share: three chat prompts, a fixed ~500-token text, and its
perplexity under a given cache (tests/e2e/test_kv_cache_real.py, tests/server/test_serve_kv_bits_real.py,
bench/bench_kv_serve.py)."""

from __future__ import annotations

import math
from typing import Any

from mlxk.engine.types import CacheOptions

PROMPTS = ["What is the capital of France?", "Explain photosynthesis in one paragraph.",
           "List three uses of a paperclip."]
TEXT = (
    "The lighthouse keeper rose before dawn, as he had every day for thirty years. He climbed the "
    "spiral stairs, counted the steps out of habit, and checked the lamp, the lens and the clockwork "
    "that turned them. Outside, the sea was grey and calm, and a few fishing boats were already "
    "heading out past the rocks. He wrote the weather in his log: wind from the west, light rain, "
    "visibility good. Then he made coffee and sat by the window to watch the harbour wake up. "
    "The village below had changed over the years. The old bakery was now a cafe, the school had "
    "closed, and most of the young people had moved to the city. But the boats still went out, and "
    "the lighthouse still turned, and every evening he lit the lamp and watched the beam sweep across "
    "the water. Sometimes ships passed far out on the horizon, container ships and tankers on their "
    "way to distant ports, and he wondered where they were going and what they carried. In winter the "
    "storms came, and the waves broke over the rocks and threw spray against the windows. On those "
    "nights he did not sleep much. He listened to the radio, to the coast guard and the ships, and "
    "he kept the lamp burning. In the morning he walked along the shore and picked up what the sea "
    "had left: pieces of wood, rope, a glass float, once a message in a bottle that he never managed "
    "to read because the water had washed the ink away. He kept it anyway, on the shelf beside his "
    "books. When the letter came saying that the lighthouse would be automated, he read it twice and "
    "put it in a drawer. He had known it would happen. Machines could turn the lamp and log the "
    "weather; they could not watch the harbour wake up, but nobody had asked them to. On his last day "
    "he climbed the stairs once more, counted the steps, and stood at the top for a long time, looking "
    "out at the sea that had been his whole life. Then he went down, locked the door, and gave the key "
    "to the young engineer who had come to install the new equipment. She asked him whether he would "
    "miss it. He said he would miss the mornings most of all, the first light on the water, the boats "
    "going out, the gulls. She said she understood, and he believed her. He moved to a small house at "
    "the edge of the village, with a garden and a view of the lighthouse, and every evening he still "
    "watched the beam sweep across the water, turning on its own now, as faithful as ever."
)


def perplexity(lm: Any, tokens: list[int], opts: CacheOptions | None, step: int = 128,
               cache: list[Any] | None = None) -> float:
    """One forward pass (chunked, so later chunks also attend to what the cache stored), with a
    cache made for ``opts`` (or the given one)."""
    import mlx.core as mx

    from mlxk.engine.kvcache import make_cache

    cache = cache if cache is not None else make_cache(lm.model, opts)
    total = 0.0
    for i in range(0, len(tokens) - 1, step):
        chunk = tokens[i:i + step + 1]
        logits = lm.model(mx.array(chunk[:-1])[None], cache=cache)[0].astype(mx.float32)
        lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        total += float(mx.take_along_axis(lp, mx.array(chunk[1:])[:, None], axis=-1).sum())
    return math.exp(-total / (len(tokens) - 1))
