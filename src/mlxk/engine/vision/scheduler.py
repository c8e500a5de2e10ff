"""The server's scheduler for one vision model: image requests prefill alone, then decode in one batch.

Same interface and event stream as ``mlxk.engine.batch.BatchScheduler`` (submit,
cancel, close, the ``Delta`` queue, the bounded queue with ``ServerBusy``,
logprobs), so the pool and every route treat both alike.

How it batches (``engine.vision.decode``): each admitted request, with images or
text-only, is prefilled alone through mlx-vlm (vision tower, image tokens, the
language model over the prompt), which yields its KV cache, its first token and
its rope offset (Qwen2-VL's multimodal rope places the tokens after an image at
``offset + rope_delta``, a per-sequence value mlx-vlm keeps on the model object,
read right after the prefill). The sequence then joins the model's running batch,
and every step decodes all of them with one forward pass of the language model,
each row with its own offset. Between two prefills the batch takes one step, so
an arriving image does not stall the running streams for longer than its own
prefill.

Families: those in ``decode.BATCHED_FAMILIES`` (Qwen2-VL, Qwen2.5-VL) batch. The
others keep per-sequence state mlx-vlm does not expose per row, so their requests
run one at a time, in order, each with its own prefill and decode (``_serve_serial``).
Either way a vision model's queue never blocks another model.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

from mlxk.engine.batch import BatchScheduler, Delta, Handle, RequestStats, Submission
from mlxk.errors import ExecutionError, MlxkError, ServerBusy, ValidationError

log = logging.getLogger("mlxk.engine.vision")


@dataclass
class _Step:
    """One sampled token, shaped like a batch generator's response for ``BatchScheduler._token``."""

    token: int
    logprobs: Any
    finish_reason: str | None


class VisionScheduler(BatchScheduler):
    batched: bool = False          # whether this model's sequences decode in one batch
    decode_steps = 0               # forward passes of the decode batch (tests, metrics)
    peak_batch = 0                 # the most sequences one decode step carried

    def submit_all(self, subs: list[Submission]) -> list[Handle]:
        if any(s.prompt_logprobs is not None for s in subs):
            raise ValidationError("prompt logprobs (echo) are not supported with vision models",
                                  param="echo", code="unsupported_parameter")
        return super().submit_all(subs)

    def _run(self) -> None:
        try:
            from mlxk.engine.vision.decode import batchable

            self.lm = self._load()
            self.batched = batchable(self.lm)
        except BaseException as exc:  # report to whoever waits for the load
            self._ready.set_exception(exc)
            return
        if self.cache_options is not None and self.cache_options.active:
            log.warning("%s: KV-cache options (--max-kv-size, --kv-bits) do not apply to vision "
                        "models; running with the full cache", self.name)
        self._ready.set_result(self.lm)
        try:
            if self.batched:
                self._serve_batched()
            else:
                self._serve_serial()
        finally:
            self._fail_all(ServerBusy(f"model {self.name} was unloaded; retry"))
            self.lm = None
            with contextlib.suppress(Exception):
                import gc

                import mlx.core as mx

                gc.collect()
                mx.clear_cache()

    # --- shared by both ways ------------------------------------------------------------
    def _activate(self, h: Handle, uid: int) -> None:
        h.uid = uid
        h.admitted = time.perf_counter()
        self._active[uid] = h
        self._set_active_count()

    def _retire(self, h: Handle) -> None:
        self._active.pop(h.uid, None)
        self._set_active_count()

    def _fail_one(self, h: Handle, exc: MlxkError) -> None:
        if not h.done:
            h.done = True
            self._post([(h, [exc])])
        self._retire(h)

    def _emit(self, h: Handle, token: int, logprobs: Any, now: float,
              out: list[tuple[Handle, Any]]) -> bool:
        """Feed one token to ``h``; True when its sequence ended."""
        reason = "length" if h.n_tokens + 1 >= h.prepared.max_tokens else None
        item, end = self._token(h, _Step(token, logprobs if h.top_logprobs is not None else None,
                                         reason), now)
        if item is not None:
            out.append((h, item))
        return end

    def _count(self, prefilled: int, decoded: int) -> None:
        if self.on_tokens is not None:
            with contextlib.suppress(Exception):
                self.on_tokens(prefilled, decoded)

    # --- batched: Qwen2-VL and kin --------------------------------------------------------
    def _serve_batched(self) -> None:
        from mlx_vlm.generate import generation_stream, wired_limit

        from mlxk.engine.vision.decode import DecodeBatch

        batch = DecodeBatch(self.lm.model.language_model)
        uids = itertools.count()
        while True:
            with self._cv:
                while not (self._closing or self._waiting or self._cancels):
                    self._cv.wait()
                if self._closing:
                    return
            with wired_limit(self.lm.model, [generation_stream]):
                while True:                        # until nothing runs and nothing waits
                    try:
                        if not self._turn(batch, uids):
                            break
                    except Exception as exc:  # a failed step fails its batch, not the server
                        log.exception("vision batch step failed for %s", self.name)
                        batch.keep([])
                        self.fail_active(ExecutionError(
                            f"generation failed: {type(exc).__name__}: {exc}"))

    def _turn(self, batch: Any, uids: Any) -> bool:
        """Cancels, at most one admission (prefill), then one decode step; False when idle."""
        with self._cv:
            if self._closing:
                return False
            cancels, self._cancels = self._cancels, []
            admit = self._waiting.popleft() if self._waiting and len(self._active) < self.max_batch \
                else None
            if admit is not None and not admit.done:
                self._activate(admit, next(uids))   # counted before the lock goes (ServerBusy)
        self._drop_cancelled(batch, cancels)
        if admit is not None and not admit.done:
            self._admit(batch, admit)
        if batch.rows:
            self._decode(batch)
        with self._cv:
            return bool(batch.rows or self._waiting or self._cancels)

    def _drop_cancelled(self, batch: Any, cancels: list[Handle]) -> None:
        gone = {h for h in cancels if h.uid is not None and self._active.get(h.uid) is h}
        gone |= {r.key for r in batch.rows if r.key.done}
        if not gone:
            return
        for h in gone:   # the tokens a dropped request used still count (metrics)
            if self.on_finish is not None:
                with contextlib.suppress(Exception):
                    self.on_finish(RequestStats(len(h.prepared.prompt_tokens), h.n_tokens, None,
                                                None, "cancelled"))
            self._active.pop(h.uid, None)
        batch.drop(gone)
        self._set_active_count()

    def _admit(self, batch: Any, h: Handle) -> None:
        import mlx.core as mx
        from mlx_vlm.generate import generation_stream

        from mlxk.engine.vision.decode import Row, prefill

        p = h.prepared
        try:
            with mx.stream(generation_stream):
                pre = prefill(self.lm, p, h.sampler, h.processors)
        except Exception as exc:  # a failed prefill fails its request, not the batch
            log.exception("vision prefill failed for %s", self.name)
            self._fail_one(h, ExecutionError(f"generation failed: {type(exc).__name__}: {exc}"))
            return
        self._count(len(p.prompt_tokens), 1)
        if h.done:   # cancelled during its prefill
            self._drop_cancelled(batch, [h])
            return
        out: list[tuple[Handle, Any]] = []
        if self._emit(h, pre.token, pre.logprobs, time.perf_counter(), out):
            self._retire(h)
        else:
            context = list(p.prompt_tokens) if h.processors else []
            batch.add(Row(h, pre.token, h.sampler, h.processors, context), pre)
        self._post(out)

    def _decode(self, batch: Any) -> None:
        import mlx.core as mx
        from mlx_vlm.generate import generation_stream

        with mx.stream(generation_stream):
            results = batch.step()
        self.decode_steps, self.peak_batch = batch.steps, max(self.peak_batch, batch.peak)
        self._count(0, len(results))
        now = time.perf_counter()
        out: list[tuple[Handle, Any]] = []
        ended = set()
        for row, token, logprobs in results:
            h = row.key
            if h.done:      # cancelled meanwhile: the next turn drops it (and counts it)
                continue
            if self._emit(h, token, logprobs, now, out):
                ended.add(h)
                self._active.pop(h.uid, None)
        if ended:
            batch.drop(ended)
            self._set_active_count()
        self._post(out)

    # --- one at a time: every other family --------------------------------------------------
    def _serve_serial(self) -> None:
        uid = 0
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
                uid += 1
                self._activate(handle, uid)         # counted before the lock goes (ServerBusy)
            try:
                self._generate(handle)
            except Exception as exc:  # a failed request fails alone, not the server
                log.exception("vision generation failed for %s", self.name)
                self._fail_one(handle, ExecutionError(f"generation failed: {type(exc).__name__}: {exc}"))
            finally:
                self._retire(handle)

    def _generate(self, h: Handle) -> None:
        from mlx_vlm.generate import generation_stream, wired_limit

        from mlxk.engine.vision.generate import token_steps

        p = h.prepared
        with wired_limit(self.lm.model, [generation_stream]):
            steps = token_steps(self.lm, p, sampler=h.sampler, processors=h.processors)
            try:
                for token, logprobs in steps:
                    if h.done:         # cancelled: the client went away
                        return
                    self._count(0 if h.n_tokens else len(p.prompt_tokens), 1)
                    out: list[tuple[Handle, Any]] = []
                    end = self._emit(h, int(token), logprobs.reshape(-1), time.perf_counter(), out)
                    self._post(out)
                    if end:
                        return
            finally:
                steps.close()
        if not h.done:  # the loop ran dry without a final token: close the sequence
            final = p.decoder.finish("length")
            self._complete_counts(h, final)
            h.done = True
            self._report(h, final, time.perf_counter())
            self._post([(h, [Delta(final, index=h.index)])])
