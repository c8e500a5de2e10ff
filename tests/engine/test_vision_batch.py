"""The vision scheduler with the tiny Qwen2-VL: image and text requests decode in one batch.

Each request's answer must be exactly ``mlx_vlm.generate``'s greedy answer for the same
inputs alone, while the scheduler's counters show the sequences shared decode steps.
One scheduler (one model load) serves the module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.tiny_vlm import QUESTION, reference

from mlxk.engine.batch import Delta, Submission
from mlxk.engine.types import GenerationRequest, SamplingParams
from mlxk.errors import ExecutionError, ServerBusy

pytestmark = pytest.mark.slow
TOKENS = 12


@pytest.fixture(scope="module")
def answers(tiny_vlm_path: Path, pictures: list[Path]) -> dict[str, tuple[str, int, int]]:
    """The reference for each kind of request: no image, one (red), the other one, both."""
    return {"text": reference(tiny_vlm_path, [], max_tokens=TOKENS),
            "red": reference(tiny_vlm_path, pictures[:1], max_tokens=TOKENS),
            "green": reference(tiny_vlm_path, pictures[1:], max_tokens=TOKENS),
            "both": reference(tiny_vlm_path, pictures, max_tokens=TOKENS)}


def _request(kind: str, pictures: list[Path], max_tokens: int = TOKENS) -> GenerationRequest:
    from mlxk.engine.vision.images import from_path

    paths = {"text": [], "red": pictures[:1], "green": pictures[1:], "both": pictures}[kind]
    content: Any = [*({"type": "image", "image": from_path(p)} for p in paths),
                    {"type": "text", "text": QUESTION}] if paths else QUESTION
    return GenerationRequest(messages=[{"role": "user", "content": content}],
                             sampling=SamplingParams(temperature=0.0), max_tokens=max_tokens)


class Runner:
    """A VisionScheduler on a private event loop (the server's shape, without HTTP)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        from mlxk.engine.vision.loader import load_vision_model
        from mlxk.engine.vision.scheduler import VisionScheduler

        self.loop = asyncio.new_event_loop()
        self.sched = VisionScheduler(lambda: load_vision_model(path, name="tiny-vl"),
                                     name="tiny-vl", **kwargs)
        self.lm = self.loop.run_until_complete(self.sched.ready())

    def prepare(self, request: GenerationRequest) -> Any:
        from mlxk.engine.vision.generate import prepare

        return prepare(self.lm, request)

    def run(self, subs: list[Submission], cancel_after: int | None = None) -> list[list[Delta]]:
        """Submit all at once, collect every sequence's deltas until its final chunk."""
        async def go() -> list[list[Delta]]:
            handles = self.sched.submit_all(subs)
            got: list[list[Delta]] = [[] for _ in subs]
            open_ = set(range(len(subs)))
            while open_:
                item = await asyncio.wait_for(handles[0].queue.get(), 120)
                if isinstance(item, Exception):
                    raise item
                got[item.index].append(item)
                if item.chunk.finish_reason is not None:
                    open_.discard(item.index)
                if cancel_after is not None and item.index == 0 and len(got[0]) == cancel_after:
                    self.sched.cancel(handles[0])
                    open_.discard(0)
            return got
        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.sched.close()
        self.loop.close()


@pytest.fixture(scope="module")
def runner(tiny_vlm_path: Path) -> Iterator[Runner]:
    r = Runner(tiny_vlm_path, max_batch=8, max_queue=4)
    yield r
    r.close()


def _text(deltas: list[Delta]) -> str:
    return "".join(d.chunk.text for d in deltas)


def test_image_and_text_requests_decode_in_one_batch(runner: Runner, pictures: list[Path],
                                                     answers: dict) -> None:
    kinds = ["both", "text", "red", "green", "text", "red"]
    steps_before = runner.sched.decode_steps
    subs = [Submission(runner.prepare(_request(k, pictures))) for k in kinds]
    got = runner.run(subs)
    assert runner.sched.batched
    for kind, deltas in zip(kinds, got, strict=True):
        text, prompt_tokens, gen_tokens = answers[kind]
        final = deltas[-1].chunk
        assert (_text(deltas), final.prompt_tokens, final.completion_tokens) == \
            (text, prompt_tokens, gen_tokens), kind
        assert final.finish_reason == "length"
    # one token of each came from its prefill; the rest from shared decode steps
    decoded = sum(TOKENS - 1 for _ in kinds)
    steps = runner.sched.decode_steps - steps_before
    assert runner.sched.peak_batch == len(kinds)
    assert steps < decoded


def test_two_different_images_batch_and_keep_their_own_offsets(runner: Runner, pictures: list[Path],
                                                              answers: dict) -> None:
    """Red and green have different image-token counts, so different rope offsets."""
    assert answers["red"][1] != answers["green"][1]
    got = runner.run([Submission(runner.prepare(_request(k, pictures))) for k in ("green", "red")])
    assert [_text(d) for d in got] == [answers["green"][0], answers["red"][0]]


def test_a_cancelled_sequence_leaves_the_batch_and_the_others_finish(
        runner: Runner, pictures: list[Path], answers: dict) -> None:
    long = _request("red", pictures, max_tokens=200)
    subs = [Submission(runner.prepare(long)),
            Submission(runner.prepare(_request("text", pictures)))]
    got = runner.run(subs, cancel_after=3)
    assert _text(got[1]) == answers["text"][0]
    assert got[0][-1].chunk.finish_reason is None          # it never finished
    for _ in range(100):
        if runner.sched.active_count == 0:
            break
        runner.loop.run_until_complete(asyncio.sleep(0.05))
    assert runner.sched.active_count == 0


def test_logprobs_in_the_batch(runner: Runner, pictures: list[Path], answers: dict) -> None:
    subs = [Submission(runner.prepare(_request("red", pictures)), top_logprobs=2),
            Submission(runner.prepare(_request("text", pictures)))]
    got = runner.run(subs)
    entries = [e for d in got[0] for e in (d.logprobs or [])]
    assert len(entries) == TOKENS
    assert all(len(e["top"]) == 2 and e["top"][0]["id"] == e["id"] for e in entries)  # greedy
    assert _text(got[0]) == answers["red"][0]
    assert all(d.logprobs is None for d in got[1])


def test_a_failed_step_fails_its_batch_and_the_model_serves_on(
        runner: Runner, pictures: list[Path], answers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlxk.engine.vision import decode

    real, calls = decode.DecodeBatch.step, []

    def failing(self: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(self)

    monkeypatch.setattr(decode.DecodeBatch, "step", failing)
    with pytest.raises(ExecutionError, match="generation failed: RuntimeError: boom"):
        runner.run([Submission(runner.prepare(_request(k, pictures))) for k in ("red", "text")])
    monkeypatch.undo()
    got = runner.run([Submission(runner.prepare(_request(k, pictures))) for k in ("text", "green")])
    assert [_text(d) for d in got] == [answers["text"][0], answers["green"][0]]
    assert runner.sched.active_count == 0


def test_one_at_a_time_families_answer_alike_and_the_queue_is_bounded(
        tiny_vlm_path: Path, pictures: list[Path], answers: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A family outside the batched list runs one at a time (the same answers), and the
    bounded queue holds for it as well."""
    from mlxk.engine.vision import decode

    monkeypatch.setattr(decode, "BATCHED_FAMILIES", frozenset())
    r = Runner(tiny_vlm_path, max_batch=1, max_queue=1)
    try:
        assert not r.sched.batched
        subs = [Submission(r.prepare(_request(k, pictures))) for k in ("red", "text")]

        async def overfill() -> list[list[Delta]]:
            handles = r.sched.submit_all(subs)
            with pytest.raises(ServerBusy):
                r.sched.submit(r.prepare(_request("red", pictures)))
            got: list[list[Delta]] = [[], []]
            while sum(bool(g and g[-1].chunk.finish_reason) for g in got) < 2:
                d = await asyncio.wait_for(handles[0].queue.get(), 120)
                got[d.index].append(d)
            return got
        got = r.loop.run_until_complete(overfill())
        assert [_text(d) for d in got] == [answers["red"][0], answers["text"][0]]
        assert r.sched.peak_batch == 0
    finally:
        r.close()


def _tiny_family_model(family: str) -> Any:
    """A random-weight model of ``family`` built in memory (no tokenizer: token ids only)."""
    import json

    import mlx.core as mx
    from mlx_vlm.models import qwen2_5_vl, qwen2_vl

    module = {"qwen2_vl": qwen2_vl, "qwen2_5_vl": qwen2_5_vl}[family]
    vision = {"model_type": family, "depth": 2, "in_channels": 3, "patch_size": 14,
              "spatial_patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    vision |= {"embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2} \
        if family == "qwen2_vl" else {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64,
                                      "num_heads": 2, "window_size": 56, "fullatt_block_indexes": [1]}
    config = {"model_type": family, "hidden_size": 64, "num_hidden_layers": 2,
              "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
              "rms_norm_eps": 1e-6, "vocab_size": 300, "max_position_embeddings": 4096,
              "rope_theta": 1e6, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
              "tie_word_embeddings": False, "image_token_id": 250, "video_token_id": 253,
              "vision_start_token_id": 251, "vision_end_token_id": 252, "vision_config": vision}
    mx.random.seed(1)
    mc = module.ModelConfig.from_dict(json.loads(json.dumps(config)))
    mc.text_config = module.TextConfig.from_dict(mc.text_config)
    mc.vision_config = module.VisionConfig.from_dict(vision)
    model = module.Model(mc)
    mx.eval(model.parameters())
    return model


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_every_batched_family_decodes_as_alone(family: str) -> None:
    """For each family in ``BATCHED_FAMILIES``: images of different grids (so different rope
    offsets) and a text-only prompt, joining the batch one by one, decode the tokens
    ``mlx_vlm``'s own single-sequence loop produces."""
    from types import SimpleNamespace

    import mlx.core as mx
    from mlx_vlm.generate import generate_step

    from mlxk.engine.vision.decode import BATCHED_FAMILIES, DecodeBatch, Row, batchable, prefill

    assert family in BATCHED_FAMILIES
    model = _tiny_family_model(family)
    lm = SimpleNamespace(model=model)
    assert batchable(lm)
    greedy, n = (lambda x: mx.argmax(x, -1)), 10
    mx.random.seed(7)

    def case(grid: tuple[int, int, int] | None) -> SimpleNamespace:
        if grid is None:
            return SimpleNamespace(input_ids=mx.array([[5, 6, 7, 8, 9]]), pixel_values=None,
                                   mask=None, max_tokens=n, model_kwargs={})
        t, h, w = grid
        ids = [5, 6, 251, *[250] * (t * h * w // 4), 252, 7, 8, 9]
        return SimpleNamespace(input_ids=mx.array([ids]), mask=None, max_tokens=n,
                               pixel_values=mx.random.normal((t * h * w, 3 * 2 * 14 * 14)),
                               model_kwargs={"image_grid_thw": mx.array([grid])})

    cases = [case((1, 4, 4)), case(None), case((1, 8, 4)), case((1, 4, 8))]
    alone = [[int(t) for t, _ in generate_step(c.input_ids, model, c.pixel_values, None,
                                                max_tokens=n, sampler=greedy, **c.model_kwargs)]
             for c in cases]
    batch, got = DecodeBatch(model.language_model), {}
    for i, c in enumerate(cases):
        pre = prefill(lm, c, greedy, [])
        got[i] = [pre.token]
        batch.add(Row(i, pre.token, greedy, []), pre)
        for row, token, _ in batch.step():
            got[row.key].append(token)
    while batch.rows:
        for row, token, _ in batch.step():
            got[row.key].append(token)
        batch.keep([j for j, r in enumerate(batch.rows) if len(got[r.key]) < n])
    assert batch.peak == len(cases)
    assert [got[i][:n] for i in range(len(cases))] == alone
