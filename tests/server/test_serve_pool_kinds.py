"""Embedding and text models live in the one ModelPool: one LRU, one keep-alive, one set of metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
from tests.support.fake_server import MODEL
from tests.support.fixtures_server import metric_value

from mlxk.errors import ModelNotFound, ServerBusy, ValidationError
from mlxk.server.pool import ModelPool, Target
from mlxk.server.settings import ServerSettings

ENCODER = "fake/encoder"


def _embedding_resolver(name: str) -> Target:
    if name != ENCODER:
        raise ModelNotFound(f"The model '{name}' does not exist", param="model")
    return Target(name, Path("/nonexistent") / name, "embedding")


def _pool(**settings: object) -> ModelPool:
    return ModelPool(ServerSettings(**settings),  # type: ignore[arg-type]
                     resolver=fake_resolver, loader=load_fake, prepare=fake_prepare,
                     embedding_resolver=_embedding_resolver,
                     embedding_loader=lambda path, name: SimpleNamespace(name=name, path=path))


def test_encoders_share_the_lru_and_the_busy_rule_with_chat_models() -> None:
    async def main() -> None:
        pool = _pool(max_loaded=1, keep_alive=-1)
        enc = await pool.acquire(ENCODER, job="embedding")
        assert enc.lm.name == ENCODER and enc.scheduler is None
        assert pool.loaded_names() == [ENCODER] and pool.loaded_names("text") == []
        pool.release(enc)
        chat = await pool.acquire(MODEL)          # --max-loaded 1: the idle encoder goes (LRU)
        assert pool.loaded_names() == [MODEL]
        with pytest.raises(ServerBusy):           # the chat model is busy: no room, as for chat
            await pool.acquire(ENCODER, job="embedding")
        with pytest.raises(ModelNotFound):        # a chat name asked as an encoder: that resolver's refusal
            await pool.acquire(MODEL, job="embedding")
        pool.release(chat)
        text = pool.metrics.render().decode()
        assert metric_value(text, "mlxk_model_loads_total", model=ENCODER) == 1
        assert metric_value(text, "mlxk_model_unloads_total", model=ENCODER) == 1
        await pool.close()

    asyncio.run(main())


def test_keep_alive_zero_unloads_an_encoder_after_its_request() -> None:
    async def main() -> None:
        pool = _pool(keep_alive=0)
        enc = await pool.acquire(ENCODER, job="embedding")
        pool.release(enc)
        for _ in range(50):
            if not pool.loaded_names():
                break
            await asyncio.sleep(0.01)
        assert pool.loaded_names() == []
        await pool.close()

    asyncio.run(main())


def test_a_preloaded_encoder_is_pinned_and_the_default_for_embeddings_only(hub_cache: Path) -> None:
    from tests.support import cache_factory as cf

    cf.add_repo(hub_cache, "org/tiny-bert", cf.bert_files())

    async def main() -> None:
        pool = _pool(max_loaded=1, keep_alive=-1)
        entry = await pool.preload("org/tiny-bert")     # `serve --model` naming an encoder
        assert entry.job == "embedding" and entry.pinned and pool.default_model == "org/tiny-bert"
        got = await pool.acquire(None, job="embedding")
        assert got is entry
        pool.release(got)
        with pytest.raises(ValidationError, match="'model' is required"):
            await pool.acquire(None)                    # no default chat model
        await pool.close()

    asyncio.run(main())
