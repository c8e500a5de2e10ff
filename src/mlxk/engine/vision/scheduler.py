"""The server's scheduler for one vision model: requests run one at a time.

Same interface and event stream as ``mlxk.engine.batch.BatchScheduler`` (submit,
cancel, close, the ``Delta`` queue, the bounded queue with ``ServerBusy``), so
the pool and every route treat both alike. The difference, stated plainly:
mlx-vlm keeps per-sequence state on the model object (for example Qwen2-VL's
multimodal rope offsets), so two sequences of one vision model cannot decode
interleaved or in one batch without corrupting each other. Requests to a vision
model (with images or text-only) therefore queue and run in order, each with
its own prefill; text models keep continuous batching, and a vision model's
queue never blocks another model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from mlxk.engine.batch import BatchScheduler, Delta, Handle, Submission
from mlxk.errors import ExecutionError, ServerBusy, ValidationError

log = logging.getLogger("mlxk.engine.vision")


@dataclass
class _Step:
    """One sampled token, shaped like a batch generator's response for ``BatchScheduler._token``."""

    token: int
    logprobs: Any
    finish_reason: str | None


class VisionScheduler(BatchScheduler):
    def submit_all(self, subs: list[Submission]) -> list[Handle]:
        if any(s.prompt_logprobs is not None for s in subs):
            raise ValidationError("prompt logprobs (echo) are not supported with vision models",
                                  param="echo", code="unsupported_parameter")
        return super().submit_all(subs)

    def _run(self) -> None:
        try:
            self.lm = self._load()
        except BaseException as exc:  # report to whoever waits for the load
            self._ready.set_exception(exc)
            return
        if self.cache_options is not None and self.cache_options.active:
            log.warning("%s: KV-cache options (--max-kv-size, --kv-bits) do not apply to vision "
                        "models; running with the full cache", self.name)
        self._ready.set_result(self.lm)
        try:
            self._serve()
        finally:
            self._fail_all(ServerBusy(f"model {self.name} was unloaded; retry"))
            self.lm = None
            with contextlib.suppress(Exception):
                import gc

                import mlx.core as mx

                gc.collect()
                mx.clear_cache()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not (self._closing or self._waiting):
                    self._cv.wait()
                if self._closing:
                    return
                self._cancels.clear()          # cancelled handles are marked done; see _generate
                handle = self._waiting.popleft()
                if handle.done:
                    continue
                handle.uid = 0
                self._active[0] = handle
            self._set_active_count()
            try:
                self._generate(handle)
            except Exception as exc:  # a failed request fails alone, not the server
                log.exception("vision generation failed for %s", self.name)
                self._fail_active(ExecutionError(f"generation failed: {type(exc).__name__}: {exc}"))
            finally:
                self._active.clear()
                self._set_active_count()

    def _generate(self, h: Handle) -> None:
        from mlx_vlm.generate import generation_stream, wired_limit

        from mlxk.engine.vision.generate import token_steps

        p = h.prepared
        n = 0
        if self.on_tokens is not None:
            self.on_tokens(len(p.prompt_tokens), 0)
        with wired_limit(self.lm.model, [generation_stream]):
            steps = token_steps(self.lm, p, sampler=h.sampler, processors=h.processors)
            try:
                for token, logprobs in steps:
                    if h.done:         # cancelled: the client went away
                        return
                    n += 1
                    step = _Step(int(token), logprobs.reshape(-1) if h.top_logprobs is not None
                                 else None, "length" if n >= p.max_tokens else None)
                    item, end = self._token(h, step, time.perf_counter())
                    if item is not None:
                        self._post([(h, item)])
                    if end:
                        return
            finally:
                steps.close()
                if self.on_tokens is not None and n:
                    self.on_tokens(0, n)
        if not h.done:  # the loop ran dry without a final token: close the sequence
            final = p.decoder.finish("length")
            self._complete_counts(h, final)
            h.done = True
            self._report(h, final, time.perf_counter())
            self._post([(h, [Delta(final, index=h.index)])])
