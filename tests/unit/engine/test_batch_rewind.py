"""The per-sequence rewind of mlx-lm's ``BatchKVCache`` after a verify step
(``engine.batch_speculative.rewind``): each row loses exactly its rejected positions, keeps
its own content in order, and the attention mask then hides the rolled-away positions."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import BatchKVCache

from mlxk.engine.batch_speculative import rewind


def _cache(lengths: list[int], width: int) -> BatchKVCache:
    """Rows holding 1..n in their keys (row r: 100*r + position), then ``width`` verify positions."""
    top = max(lengths)
    c = BatchKVCache([top - n for n in lengths])
    rows = [[0.0] * (top - n) + [100.0 * r + p for p in range(1, n + 1)] for r, n in enumerate(lengths)]
    k = mx.array(rows)[:, None, :, None]
    c.update_and_fetch(k, k)
    new = mx.array([[100.0 * r + n + j for j in range(1, width + 1)] for r, n in enumerate(lengths)])
    c.update_and_fetch(new[:, None, :, None], new[:, None, :, None])
    return c


def _row(c: BatchKVCache, i: int) -> list[float]:
    return c.extract(i).keys[0, 0, :, 0].tolist()


def test_rows_lose_their_own_rejected_positions() -> None:
    c = _cache([3, 5, 2], width=4)
    rewind([c], [1, 3, 0])
    assert _row(c, 0) == [1, 2, 3, 4, 5, 6]
    assert _row(c, 1) == [101, 102, 103, 104, 105, 106]
    assert _row(c, 2) == [201, 202, 203, 204, 205, 206]
    assert c.offset.tolist() == [6, 6, 6]
    assert min(c.left_padding.tolist()) == 0           # common padding cut off
    assert c._idx == 6
    # the next step appends after each row's own content
    nxt = mx.array([[7.0], [107.0], [207.0]])[:, None, :, None]
    c.update_and_fetch(nxt, nxt)
    assert _row(c, 1)[-2:] == [106, 107]


def test_equal_rejections_only_trim() -> None:
    c = _cache([2, 4], width=3)
    rewind([c], [2, 2])
    assert _row(c, 0) == [1, 2, 3] and _row(c, 1) == [101, 102, 103, 104, 105]
    assert c.left_padding.tolist() == [2, 0]


def test_rolled_positions_become_masked_padding() -> None:
    c = _cache([4, 4], width=3)
    rewind([c], [0, 2])
    assert c.left_padding.tolist() == [0, 2]
    mask = c.make_mask(1)[:, 0, 0].tolist()        # what the next token of each row attends to
    assert mask[0] == [True] * 8 and mask[1] == [False, False] + [True] * 6
