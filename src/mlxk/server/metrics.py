"""Prometheus metrics for ``/metrics``, one registry per app (so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_ITL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30)
_TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Metrics:
    def __init__(self) -> None:
        # No ``*_created`` series: they double the output and no dashboard reads them.
        disable_created_metrics()
        r = self.registry = CollectorRegistry()
        self.requests = Counter("mlxk_requests", "HTTP requests by route and status",
                                ["endpoint", "status"], registry=r)
        self.dialect_requests = Counter("mlxk_dialect_requests", "HTTP requests by API dialect "
                                        "(anthropic, openai_responses, ollama, openai_chat ...) and "
                                        "status", ["dialect", "status"], registry=r)
        self.tokens_in = Counter("mlxk_prompt_tokens", "prompt tokens processed", ["model"], registry=r)
        self.tokens_out = Counter("mlxk_completion_tokens", "tokens generated", ["model"], registry=r)
        self.ttft = Histogram("mlxk_time_to_first_token_seconds", "time from admission to first token",
                              ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("mlxk_inter_token_latency_seconds", "time between two tokens of a stream",
                             ["model"], buckets=_ITL_BUCKETS, registry=r)
        self.queue_time = Histogram("mlxk_queue_time_seconds", "time a request waited for a decode slot",
                                    ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.prefill_tokens = Counter("mlxk_prefill_tokens", "prompt tokens computed by prefill (not "
                                      "served from a prefix cache)", ["model"], registry=r)
        self.decode_tokens = Counter("mlxk_decode_tokens", "tokens computed by decode steps",
                                     ["model"], registry=r)
        self.decode_steps = Counter("mlxk_decode_steps", "forward passes that produced tokens; one "
                                    "step of N batched sequences makes N tokens", ["model"], registry=r)
        self.tps = Histogram("mlxk_generation_tokens_per_second", "decode speed per request",
                             ["model"], buckets=_TPS_BUCKETS, registry=r)
        self.queue_depth = Gauge("mlxk_queue_depth", "requests waiting for a decode slot",
                                 ["model"], registry=r)
        self.active = Gauge("mlxk_active_sequences", "sequences being decoded", ["model"], registry=r)
        self.cached_tokens = Gauge("mlxk_prefix_cache_tokens", "prompt tokens served from the prefix "
                                   "cache (cumulative)", ["model"], registry=r)
        self.disk_tokens = Gauge("mlxk_prefix_cache_disk_tokens", "prompt tokens served from the on-disk "
                                 "prefix cache, --prompt-cache-dir (cumulative)", ["model"], registry=r)
        self.prefix_bytes = Gauge("mlxk_prefix_cache_bytes", "bytes of KV state the in-memory prefix "
                                  "cache holds (quantized under --kv-bits)", ["model"], registry=r)
        self.spec_drafted = Gauge("mlxk_speculative_draft_tokens", "tokens drafted by speculative "
                                  "decoding, --prompt-lookup or --draft-model (cumulative)", ["model"], registry=r)
        self.spec_accepted = Gauge("mlxk_speculative_accepted_tokens", "drafted tokens the model kept "
                                   "(cumulative)", ["model"], registry=r)
        self.spec_rate = Gauge("mlxk_speculative_acceptance_rate", "accepted / drafted tokens since the "
                               "model loaded", ["model"], registry=r)
        self.loaded = Gauge("mlxk_loaded_models", "models currently loaded", registry=r)
        self.loads = Counter("mlxk_model_loads", "model loads", ["model"], registry=r)
        self.unloads = Counter("mlxk_model_unloads", "model unloads", ["model"], registry=r)
        self.load_seconds = Histogram("mlxk_model_load_seconds", "model load time", ["model"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("mlxk_rejected_requests", "requests refused because the queue was full",
                                ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
