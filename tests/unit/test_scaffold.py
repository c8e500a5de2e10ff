"""The package imports, the CLI parses, and the config agrees with huggingface_hub."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cli import mlxk_env, run_mlxk


def test_version_json_envelope() -> None:
    res = run_mlxk("--version", "--json")
    assert res.returncode == 0, res.stderr
    env = res.json
    assert env["status"] == "success" and env["command"] == "version" and env["error"] is None
    assert env["data"]["system"]["memory_total_bytes"] > 0


def test_usage_error_exit_2_json() -> None:
    res = run_mlxk("list", "--no-such-flag", "--json")
    assert res.returncode == 2
    assert res.json["error"]["type"] == "CommandError"


def test_hub_cache_matches_huggingface_hub(tmp_path) -> None:
    code = ("import json, huggingface_hub.constants as c, mlxk.config as m;"
            "print(json.dumps([str(c.HF_HUB_CACHE), str(m.hub_cache())]))")
    for extra in ({}, {"HF_HUB_CACHE": str(tmp_path / "elsewhere")}):
        out = subprocess.run([sys.executable, "-c", code], env=mlxk_env(extra), capture_output=True,
                             text=True, check=True).stdout
        theirs, ours = json.loads(out)
        assert theirs == ours
