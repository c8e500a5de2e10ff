"""Shard planning and host parsing: pure checks that run before any rank starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlxk.engine.distributed import shardplan
from mlxk.errors import NotRuntimeCompatible, ValidationError

LLAMA = {"model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 5, "intermediate_size": 128, "hidden_size": 64}


def test_modes_follow_the_installed_mlx_lm() -> None:
    assert shardplan.supported_modes({"model_type": "llama"}) == ["tensor"]
    assert shardplan.supported_modes({"model_type": "mistral"}) == ["tensor"]  # remapped to llama
    assert shardplan.supported_modes({"model_type": "qwen2"}) == ["tensor", "pipeline"]
    assert shardplan.supported_modes({"model_type": "gpt2"}) == []
    assert shardplan.supported_modes({"model_type": "../../etc"}) == []


def test_modes_agree_with_the_model_classes() -> None:
    """The source scan says what mlx_lm.utils.sharded_load would find on the built model."""
    from mlx_lm.utils import _get_classes

    for family in ("llama", "qwen2", "gpt2", "qwen3_next", "phi3"):
        model_cls, _ = _get_classes({"model_type": family})
        has_tensor = hasattr(model_cls, "shard")
        inner = {"llama": "LlamaModel", "qwen2": "Qwen2Model", "gpt2": "GPT2Model",
                 "qwen3_next": "Qwen3NextModel", "phi3": "Phi3Model"}[family]
        module = sys.modules[model_cls.__module__]
        has_pipe = hasattr(getattr(module, inner), "pipeline")
        expected = [m for m, ok in (("tensor", has_tensor), ("pipeline", has_pipe)) if ok]
        assert shardplan.supported_modes({"model_type": family}) == expected, family


@pytest.mark.parametrize("layers,world", [(5, 2), (4, 2), (7, 3), (3, 3)])
def test_pipeline_split_matches_mlx_lm(layers: int, world: int) -> None:
    from mlx_lm.models.pipeline import PipelineMixin

    class _Group:
        def __init__(self, r: int) -> None:
            self.r = r

        def rank(self) -> int:
            return self.r

        def size(self) -> int:
            return world

    ours = shardplan.pipeline_split(layers, world)
    for r in range(world):
        m = PipelineMixin()
        m.layers = list(range(layers))
        m.pipeline(_Group(r))
        assert ours[r] == (m.start_idx, m.end_idx)


def test_tensor_plan_halves_the_sharded_weights() -> None:
    sizes = {"model.embed_tokens.weight": 1000, "lm_head.weight": 1000, "model.norm.weight": 10,
             "model.layers.0.self_attn.q_proj.weight": 400, "model.layers.0.mlp.up_proj.weight": 800,
             "model.layers.0.input_layernorm.weight": 10}
    plan = shardplan.plan(LLAMA, 2, None, sizes)
    assert plan.mode == "tensor"
    assert [r.attention_heads for r in plan.ranks] == [2, 2]
    assert [r.kv_heads for r in plan.ranks] == [1, 1]
    assert plan.ranks[0].bytes == 1000 + 1000 + 10 + 200 + 400 + 10
    assert plan.total_bytes == sum(sizes.values())


def test_pipeline_plan_splits_layers_and_keeps_the_ends_everywhere() -> None:
    cfg = {**LLAMA, "model_type": "qwen2"}
    sizes = {"model.embed_tokens.weight": 100, **{f"model.layers.{i}.mlp.up_proj.weight": 10 for i in range(5)}}
    plan = shardplan.plan(cfg, 2, "pipeline", sizes)
    assert [r.layers for r in plan.ranks] == [[2, 5], [0, 2]]
    assert [r.bytes for r in plan.ranks] == [130, 120]


def test_heads_that_do_not_divide_are_refused() -> None:
    with pytest.raises(ValidationError, match="3 attention heads"):
        shardplan.plan({**LLAMA, "num_attention_heads": 3, "num_key_value_heads": 3}, 2)
    with pytest.raises(ValidationError, match="key/value heads"):
        shardplan.plan({**LLAMA, "num_key_value_heads": 1}, 2)


def test_unsupported_family_and_mode() -> None:
    with pytest.raises(NotRuntimeCompatible, match="cannot be sharded"):
        shardplan.plan({"model_type": "gpt2", "n_head": 4, "n_layer": 2}, 2)
    with pytest.raises(ValidationError, match="does not support pipeline"):
        shardplan.plan(LLAMA, 2, "pipeline")
    with pytest.raises(ValidationError, match="one layer per rank"):
        shardplan.plan({**LLAMA, "model_type": "qwen2", "num_hidden_layers": 1}, 2, "pipeline")


def test_hostfile_parsing_uses_mlx_format(tmp_path: Path) -> None:
    from mlxk.engine.distributed.launch import parse_hosts

    hf = tmp_path / "hosts.json"
    hf.write_text(json.dumps({"backend": "ring", "envs": ["A=1"], "hosts": [
        {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": "localhost", "ips": ["127.0.0.1"]}]}))
    hs = parse_hosts(None, str(hf), None)
    assert hs.backend == "ring" and hs.envs == ["A=1"]
    assert [h.ssh for h in hs.hosts] == ["127.0.0.1", "127.0.0.1"]
    assert all(h.local for h in hs.hosts)
    with pytest.raises(ValidationError, match="at least two ranks"):
        parse_hosts("127.0.0.1", None, None)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValidationError, match="bad host list"):
        parse_hosts(None, str(tmp_path / "bad.json"), None)


def test_show_and_shardplan_do_not_import_mlx() -> None:
    code = ("import sys; from mlxk.engine.distributed import shardplan; from mlxk.operations import models; "
            "shardplan.supported_modes({'model_type': 'qwen2'}); "
            "bad = [m for m in ('mlx', 'mlx.core', 'mlx_lm') if m in sys.modules]; print(bad)")
    from tests.support.cli import mlxk_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=mlxk_env(),
                         check=True)
    assert out.stdout.strip() == "[]"


def test_ops_survive_a_terminal_line_limit() -> None:
    """Long ops are cut into short ASCII lines (a remote rank 0 reads through ssh's pty)."""
    from mlxk.engine.distributed import protocol as rankproto

    prompt = "Grüße " * 2000 + "\x03\x04 end"
    data = rankproto.encode_op("generate", request={"prompt": prompt})
    lines = data.decode("ascii").splitlines(keepends=True)
    assert len(lines) > 10 and max(len(x) for x in lines) <= rankproto.LINE_PIECE + 2
    assert all(32 <= ord(c) < 127 for x in lines for c in x.rstrip("\n"))
    reader = rankproto.OpReader()
    ops = [op for op in (reader.feed(x.replace("\n", "\r\n")) for x in lines) if op is not None]
    assert ops == [{"op": "generate", "request": {"prompt": prompt}}]
    assert reader.feed(rankproto.encode_op("shutdown").decode()) == {"op": "shutdown"}
