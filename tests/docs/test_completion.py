"""Shell completion: the generated scripts load in real shells and complete real cache entries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cache_factory import add_repo, config_json
from tests.support.cli import mlxk_env, run_mlxk

MODEL = "mlx-community/SmolLM2-135M-Instruct-4bit"
OTHER = "acme/Tiny-Llama"
COMMIT_A = "a" * 8 + "1" * 32
COMMIT_B = "b" * 8 + "2" * 32
PY = sys.executable


@pytest.fixture
def cache(hub_cache: Path) -> Path:
    add_repo(hub_cache, MODEL, {"config.json": config_json(), "model.safetensors": b"x"}, commit=COMMIT_A)
    add_repo(hub_cache, MODEL, {"config.json": config_json(), "model.safetensors": b"y"}, commit=COMMIT_B)
    add_repo(hub_cache, OTHER, {"config.json": config_json()})
    return hub_cache


@pytest.fixture(scope="module")
def script_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("completion")
    for shell in ("bash", "zsh", "fish"):
        res = run_mlxk("completion", shell)
        assert res.returncode == 0, res.stderr
        (d / f"mlxk.{shell}").write_text(res.stdout)
    return d


# ---------------------------------------------------------------- the fast model lookup
def test_models_fast_path_lists_cache(cache: Path) -> None:
    res = run_mlxk("completion", "--models=")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == sorted([MODEL, OTHER])


def test_models_fast_path_short_name_and_revisions(cache: Path) -> None:
    assert run_mlxk("completion", "--models=smol").stdout.split() == [MODEL]
    revs = run_mlxk("completion", f"--models={MODEL}@").stdout.split()
    assert revs == [f"{MODEL}@aaaaaaaa", f"{MODEL}@bbbbbbbb"]
    assert run_mlxk("completion", f"--models={MODEL}@b").stdout.split() == [f"{MODEL}@bbbbbbbb"]


def test_models_fast_path_never_imports_mlx(cache: Path) -> None:
    code = ("import sys; from mlxk.cli.main import main; main(['completion', '--models=']);"
            "bad = [m for m in ('mlx', 'mlx_lm', 'transformers', 'torch') if m in sys.modules];"
            "assert not bad, bad")
    proc = subprocess.run([PY, "-c", code], env=mlxk_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert MODEL in proc.stdout


def test_completion_without_shell_is_usage_error() -> None:
    res = run_mlxk("completion")
    assert res.returncode == 2
    assert "bash|zsh|fish" in res.stderr


# ---------------------------------------------------------------- bash (always)
def _bash_complete(script: Path, words: list[str]) -> list[str]:
    """Run the script's completion function for ``words`` (last word = the one being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = f"""
mlxk() {{ "{PY}" -m mlxk "$@"; }}
source '{script}'
COMP_WORDS=({quoted})
COMP_CWORD={len(words) - 1}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_mlxk
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], env=mlxk_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def test_bash_script_is_valid_syntax(script_dir: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script_dir / "mlxk.bash")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bash_completes_commands_and_flags(script_dir: Path) -> None:
    script = script_dir / "mlxk.bash"
    assert _bash_complete(script, ["mlxk", "he"]) == ["health"]
    assert set(_bash_complete(script, ["mlxk", "s"])) >= {"show", "serve", "server"}
    assert "--version" in _bash_complete(script, ["mlxk", "--v"])
    assert _bash_complete(script, ["mlxk", "completion", "z"]) == ["zsh"]

def test_bash_completes_every_flag_of_every_command(script_dir: Path) -> None:
    # The tables in the script come from the parser: each command offers exactly its flags.
    from mlxk.cli.cli_spec import cli_spec

    script = script_dir / "mlxk.bash"
    for cmd in cli_spec().commands:
        expected = {n for f in cmd.flags for n in f.names if n.startswith("--")}
        assert set(_bash_complete(script, ["mlxk", cmd.name, "--"])) == expected, cmd.name
        for alias in cmd.aliases:
            assert set(_bash_complete(script, ["mlxk", alias, "--"])) == expected, alias


def test_bash_completes_cached_model_names(cache: Path, script_dir: Path) -> None:
    script = script_dir / "mlxk.bash"
    assert _bash_complete(script, ["mlxk", "show", "mlx-community/Smo"]) == [MODEL]
    assert _bash_complete(script, ["mlxk", "show", "Smol"]) == [MODEL]
    assert _bash_complete(script, ["mlxk", "show", "--files", f"{MODEL}@a"]) == [f"{MODEL}@aaaaaaaa"]
    assert set(_bash_complete(script, ["mlxk", "--json", "show", ""])) == {MODEL, OTHER}


def test_bash_completes_local_model_directories(cache: Path, script_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _bash_complete(script_dir / "mlxk.bash", ["mlxk", "show", "./my"]) == ["./my-model"]


def test_bash_does_not_offer_models_where_text_goes(cache: Path, script_dir: Path) -> None:
    # `run MODEL PROMPT`: the second positional is free text.
    assert _bash_complete(script_dir / "mlxk.bash", ["mlxk", "run", MODEL, "Smo"]) == []


def test_bash_real_tab_in_interactive_shell(cache: Path, script_dir: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    rc = cache.parent / "bashrc"
    rc.write_text(f"""PS1='READY> '
mlxk() {{ if [ "$1" = completion ]; then "{PY}" -m mlxk "$@"; else echo "ARGS:$*"; fi; }}
source '{script_dir / "mlxk.bash"}'
""")
    child = pexpect.spawn("bash", ["--noprofile", "--rcfile", str(rc), "-i"], env=mlxk_env(),
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    try:
        child.expect_exact("READY> ")
        child.send("mlxk show mlx-community/Smo\t")
        child.send("\r")
        child.expect_exact(f"ARGS:show {MODEL}")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


# ---------------------------------------------------------------- zsh and fish (when installed)
needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
needs_fish = pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")


@needs_zsh
def test_zsh_real_tab_completes_model(cache: Path, script_dir: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    zdot = cache.parent / "zdot"
    zdot.mkdir()
    (zdot / ".zshrc").write_text(f"""PS1='READY> '
autoload -Uz compinit && compinit -u -d '{zdot}/.zcompdump'
mlxk() {{ if [ "$1" = completion ]; then "{PY}" -m mlxk "$@"; else echo "ARGS:$*"; fi; }}
source '{script_dir / "mlxk.zsh"}'
""")
    (cache.parent / "my-model").mkdir()
    child = pexpect.spawn("zsh", ["-i"], env=mlxk_env({"ZDOTDIR": str(zdot), "TERM": "xterm"}),
                          encoding="utf-8", timeout=60, dimensions=(40, 200), cwd=str(cache.parent))
    try:
        child.expect_exact("READY> ")
        child.send("mlxk show mlx-community/Smo\t")
        child.send("\r")
        child.expect_exact(f"ARGS:show {MODEL}")
        child.send("mlxk he\t\r")
        child.expect_exact("ARGS:health")
        child.send("mlxk show --fil\t\r")
        child.expect_exact("ARGS:show --files")
        child.send("mlxk show ./my-m\t\r")
        child.expect_exact("ARGS:show ./my-model")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def _fish_complete(script: Path, line: str) -> list[str]:
    program = f"""
function mlxk; "{PY}" -m mlxk $argv; end
source '{script}'
complete -C '{line}'
"""
    proc = subprocess.run(["fish", "--no-config", "-c", program], env=mlxk_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [row.split("\t")[0] for row in proc.stdout.splitlines() if row]


@needs_fish
def test_fish_completes_commands_flags_and_models(cache: Path, script_dir: Path) -> None:
    script = script_dir / "mlxk.fish"
    assert _fish_complete(script, "mlxk he") == ["health"]
    assert {"--files", "--config", "--json"} <= set(_fish_complete(script, "mlxk show --"))
    assert _fish_complete(script, "mlxk show mlx-community/Smo") == [MODEL]
    assert _fish_complete(script, f"mlxk show {MODEL}@b") == [f"{MODEL}@bbbbbbbb"]
    assert _fish_complete(script, f"mlxk run {MODEL} Smo") == []


@needs_fish
def test_fish_completes_local_model_directories(cache: Path, script_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _fish_complete(script_dir / "mlxk.fish", "mlxk show ./my") == ["./my-model/"]
