"""Ctrl-C in a chat while a long prompt is still being read stops within a second.

KeyboardInterrupt can only land between prefill chunks; the chat reads prompts in small chunks.
The tiny llama is real (mlx-lm's generate_step runs), slowed down per prompt token so that a
prefill takes seconds, as a long prompt on a big model does.
"""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlxk.engine.types import SamplingParams
from mlxk.operations.run import ChatSession, RunOptions

pytestmark = pytest.mark.slow
SECONDS_PER_TOKEN = 0.001


class SlowModel:
    """Delegates to the real model, sleeping in proportion to the tokens of each call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(SECONDS_PER_TOKEN * inputs.shape[-1])
        return self.inner(inputs, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_ctrl_c_before_the_first_token_stops_within_a_second(tiny_model_dir: Path) -> None:
    from mlxk.engine.loader import load_model

    lm = load_model(tiny_model_dir)
    lm.model = SlowModel(lm.model)
    session = ChatSession(lm, RunOptions(sampling=SamplingParams(temperature=0.0), max_tokens=4))
    long_prompt = " ".join(["The capital of France is Paris."] * 250)   # ~1,700 tokens: ~1.7 s
    pressed: list[float] = []

    def press_ctrl_c() -> None:
        time.sleep(0.3)
        pressed.append(time.monotonic())
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        for _ in session.ask(long_prompt):
            pass
    stopped = time.monotonic()
    assert pressed and stopped - pressed[0] < 1.0, f"took {stopped - pressed[0]:.2f}s to stop"
    assert session.history[-1]["role"] == "assistant"   # the interrupted turn is kept, as during an answer
