"""`rm`: the same resolution for --dry-run and the real run, a [y/N] on a terminal that names
the full repo id, "n" is an answer (not an error), and several models in one call."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.support import cache_factory as cf
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.schema import assert_valid

from mlxk.cache import layout

CHAT = "mlx-community/Tiny-Chat-4bit"


def _rm_on_a_terminal(args: list[str], answer: str) -> tuple[int, str, str]:
    """``mlxk rm ARGS`` with stdin and stderr on a pseudo-terminal; types ``answer`` at the prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(mlxk_argv("rm", *args), stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                            env=mlxk_env(), text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    os.write(master, (answer + "\n").encode())
    stdout, _ = proc.communicate(timeout=60)
    try:
        while select.select([master], [], [], 0.2)[0]:
            seen += os.read(master, 4096)
    except OSError:
        pass
    os.close(master)
    return proc.returncode, stdout, seen.decode(errors="replace")


def test_short_name_dry_run_and_real_run_resolve_the_same(chat_model) -> None:
    dry = run_mlxk("rm", "tiny-chat", "--dry-run", "--json")
    assert dry.returncode == 0 and assert_valid(dry.json)["data"]["model"] == CHAT
    real = run_mlxk("rm", "tiny-chat", "--json")
    assert real.returncode == 1
    err = assert_valid(real.json)["error"]
    assert err["type"] == "requires_confirmation" and CHAT in err["message"]
    assert "partial name" not in err["message"]
    assert layout.repo_dir(CHAT).exists()


def test_terminal_confirmation_names_the_full_id(chat_model) -> None:
    code, stdout, terminal = _rm_on_a_terminal(["tiny-chat"], "n")
    assert code == 1 and f"Delete '{CHAT}'" in terminal
    assert "Error" not in terminal and "Nothing deleted" in stdout
    assert layout.repo_dir(CHAT).exists()
    code, stdout, terminal = _rm_on_a_terminal(["tiny-chat"], "y")
    assert code == 0, terminal
    assert f"Deleted '{CHAT}'" in stdout and not layout.repo_dir(CHAT).exists()


def test_several_models_one_call_one_envelope(hub_cache: Path) -> None:
    names = ["mlx-community/A-4bit", "mlx-community/B-4bit", "other/C"]
    for n in names:
        cf.add_repo(hub_cache, n, cf.mlx_model_files())
    dry = run_mlxk("rm", "A-4bit", "B-4bit", "--dry-run", "--json")
    assert dry.returncode == 0
    data = assert_valid(dry.json)["data"]
    assert [m["model"] for m in data["models"]] == names[:2] and data["action"] == "dry_run"
    r = run_mlxk("rm", "A-4bit", "B-4bit", "nosuch", "-f", "--json")
    assert r.returncode == 1 and r.json["error"]["type"] == "model_not_found"
    assert all(layout.repo_dir(n).exists() for n in names)    # one unknown name: nothing deleted
    r = run_mlxk("rm", "A-4bit", "B-4bit", "-f", "--json")
    assert r.returncode == 0, r.stdout
    data = assert_valid(r.json)["data"]
    assert data["action"] == "deleted" and data["freed_bytes"] == sum(m["freed_bytes"] for m in data["models"])
    assert [layout.repo_dir(n).exists() for n in names] == [False, False, True]
