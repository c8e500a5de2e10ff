"""Server settings: plain values, built once by ``operations.serve`` and passed in explicitly."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field

from mlxk import config

OptionValue = int | str | None   # a per-model generation option (model_options.KNOWN_KEYS)
DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_LOADED = 2
DEFAULT_STOP_TIMEOUT = 15.0
DEFAULT_PREFILL_CHUNK = 64                   # prompt tokens per prefill step (bench/bench_serve.py)
DEFAULT_PROMPT_CACHE_DISK_BYTES = 8 * 1024**3


@dataclass
class ServerSettings:
    """Everything the server process needs; serialisable so the supervisor can hand it to the child."""

    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_PORT
    model: str | None = None                 # preloaded model (name or path), pinned while running
    max_loaded: int = DEFAULT_MAX_LOADED     # LRU bound on loaded models
    keep_alive: float = config.DEFAULT_KEEP_ALIVE_SECONDS  # 0: unload after each request, -1: never
    memory_budget_bytes: int | None = None   # None: 75% of physical memory
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_queue: int = DEFAULT_MAX_QUEUE       # requests waiting for a decode slot, per model
    max_batch: int = DEFAULT_MAX_BATCH       # sequences decoded together, per model
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK  # prompt tokens prefilled between two decode steps
    prompt_cache_dir: str | None = None      # long prefixes kept on disk across restarts
    prompt_cache_disk_bytes: int = DEFAULT_PROMPT_CACHE_DISK_BYTES
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # graceful drain before the child is killed
    log_json: bool = False
    restart: bool = False
    allow_image_urls: bool = False           # images as http(s) URLs the server fetches (SSRF risk)
    generation: dict[str, OptionValue] = field(default_factory=dict)  # --max-kv-size ... (model_options keys)
    model_options: dict[str, dict[str, OptionValue]] = field(default_factory=dict)  # --model-options FILE
    ui: bool = True                          # the browser chat page at / and /chat
    adapters: list[dict[str, str]] = field(default_factory=list)  # served LoRAs (server/loras.py)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        return cls(**json.loads(text))

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
