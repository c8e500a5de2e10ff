"""Served LoRA adapters over real HTTP (`serve --lora`): the tiny llama with two random adapters
built with mlx-lm's tuner utilities, and a `--max-kv-size` window.

- `/v1/models` lists `tiny-llama+sql` and `tiny-llama+chat` as their own cards (`parent`,
  `adapter`); every text card reports `context_length` (the window) and `max_model_len` (config).
- Greedy output for `<base>+<name>` equals `mlxk run --adapter-path`; the plain base name equals a
  plain `mlxk run`; the adapters change the output; the bare adapter name works too. The adapters
  share the base's weights: base and both adapters stay loaded under `--max-loaded 2`.
- An unknown adapter is 404 `model_not_found` (the official `openai` client's NotFoundError).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from tests.support.adapters import build_random_adapter
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

from mlxk.errors import ValidationError
from mlxk.server.loras import parse_flag
from mlxk.server.model_options import read_file, split_loras

WINDOW = 256
PROMPT = "Hello world!"
N = 8


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {"sql": build_random_adapter(tiny_llama_dir(), root / "sql", num_layers=2, seed=1),
            "chat": build_random_adapter(tiny_llama_dir(), root / "chat", num_layers=1, seed=2,
                                         base=TINY_REPO_ID)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, adapters: dict[str, Path]) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {TINY_REPO_ID: tiny_llama_dir()})
    opts = Path(home) / "models.toml"       # one more name for the sql folder, from --model-options
    opts.write_text(f'["tiny-llama"]\nloras = {{ other = "{adapters["sql"]}" }}\n')
    # sql: base from --model, name given; chat: the folder's name, base from --model as well
    sp = start_serve(home, "--keep-alive", "-1", "--model", TINY_REPO_ID, "--max-kv-size", str(WINDOW),
                     "--lora", f"sql={adapters['sql']}", "--lora", str(adapters["chat"]),
                     "--model-options", str(opts), log_dir=Path(home))
    sp.home = home  # type: ignore[attr-defined]
    yield sp
    assert sp.stop() == 0


def ask(server: ServeProcess, model: str) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": N,
        "temperature": 0})


def run_answer(home: Path, *extra: str) -> str:
    r = run_mlxk("run", TINY_REPO_ID, PROMPT, "--temperature", "0", "--max-tokens", str(N), "--json",
                 "--max-kv-size", str(WINDOW), *extra, env={"HF_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    return r.json["data"]["response"]


def test_models_list_adapters_and_the_window(server: ServeProcess) -> None:
    cards = {c["id"]: c for c in httpx.get(server.base_url + "/v1/models").json()["data"]}
    base = f"{TINY_REPO_ID}"
    assert {f"{base}+sql", f"{base}+chat", f"{base}+other"} <= set(cards)
    for mid in (base, f"{base}+sql", f"{base}+chat", f"{base}+other"):
        assert cards[mid]["context_length"] == WINDOW and cards[mid]["max_model_len"] == 2048, mid
        assert cards[mid]["kv_cache"] == {"max_kv_size": WINDOW, "kv_bits": None}
    assert (cards[f"{base}+sql"]["parent"], cards[f"{base}+sql"]["adapter"]) == (base, "sql")
    assert cards[base]["parent"] is None and cards[base]["loaded"] is True
    one = httpx.get(server.base_url + f"/v1/models/{base}+chat").json()
    assert one["adapter"] == "chat" and one["capabilities"] == cards[base]["capabilities"]
    for alias in ("tiny-llama+chat", "chat"):      # resolves as a request's model does
        assert httpx.get(server.base_url + f"/v1/models/{alias}").json()["id"] == f"{base}+chat"
    assert httpx.get(server.base_url + "/v1/models/tiny-llama+nope").status_code == 404


def test_adapter_names_give_run_adapter_path_output(server: ServeProcess, adapters: dict[str, Path]) -> None:
    home = server.home  # type: ignore[attr-defined]
    plain = run_answer(home)
    answers = {}
    for name, folder in adapters.items():
        r = ask(server, f"{TINY_REPO_ID}+{name}")
        assert r.status_code == 200, r.text
        assert r.json()["model"] == f"{TINY_REPO_ID}+{name}"
        answers[name] = r.json()["choices"][0]["message"]["content"]
        assert answers[name] == run_answer(home, "--adapter-path", str(folder)), name
    assert answers["sql"] != plain and answers["chat"] != plain and answers["sql"] != answers["chat"]
    base = ask(server, TINY_REPO_ID)
    assert base.status_code == 200 and base.json()["choices"][0]["message"]["content"] == plain
    short = ask(server, "tiny-llama+sql")                      # the base as any request names it
    bare = ask(server, "sql")                                  # vLLM's habit: the adapter's name
    for r in (short, bare):
        assert r.status_code == 200, r.text
        assert r.json()["model"] == f"{TINY_REPO_ID}+sql"
        assert r.json()["choices"][0]["message"]["content"] == answers["sql"]
    # base and adapters at once, on their own schedulers over the same weights: nothing mixes up
    models = [TINY_REPO_ID, f"{TINY_REPO_ID}+sql", f"{TINY_REPO_ID}+chat"] * 2
    with ThreadPoolExecutor(6) as ex:
        together = [r.json()["choices"][0]["message"]["content"] for r in ex.map(lambda m: ask(server, m), models)]
    assert together == [plain, answers["sql"], answers["chat"]] * 2
    # the adapters ride on the loaded base (its weights shared): with the default --max-loaded 2,
    # the base and both adapters stay loaded, each adapter counted at its own size
    cards = {c["id"]: c for c in httpx.get(server.base_url + "/v1/models").json()["data"]}
    assert all(cards[f"{TINY_REPO_ID}{s}"]["loaded"] for s in ("", "+sql", "+chat"))
    ps = {m["name"]: m for m in httpx.get(server.base_url + "/mlxk/ps").json()["models"]}
    for name, folder in adapters.items():
        assert ps[f"{TINY_REPO_ID}+{name}"]["memory_bytes"] == (folder / "adapters.safetensors").stat().st_size
    assert ps[TINY_REPO_ID]["memory_bytes"] > ps[f"{TINY_REPO_ID}+chat"]["memory_bytes"]


def test_stopping_the_base_unloads_its_adapters(server: ServeProcess) -> None:
    """Runs after the requests above (file order): base and adapters are loaded."""
    def loaded() -> set[str]:
        return {m["name"] for m in httpx.get(server.base_url + "/mlxk/ps").json()["models"]}

    assert {TINY_REPO_ID, f"{TINY_REPO_ID}+sql"} <= loaded()
    r = httpx.post(server.base_url + "/mlxk/stop", json={"model": TINY_REPO_ID}, timeout=60)
    assert r.status_code == 200 and r.json()["stopped"] == [TINY_REPO_ID]
    assert loaded() == set()
    assert ask(server, "sql").status_code == 200            # loads the base again, then the adapter
    assert loaded() == {TINY_REPO_ID, f"{TINY_REPO_ID}+sql"}
    r = httpx.post(server.base_url + "/mlxk/stop", json={"all": True}, timeout=60)
    assert r.status_code == 200 and r.json()["stopped"] == [f"{TINY_REPO_ID}+sql", TINY_REPO_ID]
    assert loaded() == set()


def test_unknown_adapter_is_404(server: ServeProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0)
    for model in (f"{TINY_REPO_ID}+nope", "no-such-model+sql"):
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2)
        assert err.value.body["code"] == "model_not_found", model  # type: ignore[index]
    assert "nope" in str(err.value) or "no-such-model" in str(err.value)


def test_lora_flags_checked_at_start(adapters: dict[str, Path], tmp_path: Path) -> None:
    r = run_mlxk("serve", "--lora", str(adapters["sql"]))   # no --model and its config names no base
    assert r.returncode != 0 and "which model does this adapter go on" in r.stderr
    r = run_mlxk("serve", "--lora", f"x={tmp_path}")
    assert r.returncode != 0 and "is not an mlx-lm adapter" in r.stderr
    r = run_mlxk("serve", "--lora", f"a+b={adapters['sql']}", "--adapter-path", str(adapters["sql"]))
    assert r.returncode != 0 and "use one of them" in r.stderr


def test_flag_and_options_file_shapes(tmp_path: Path) -> None:
    assert parse_flag("./a/sql") == (None, None, "./a/sql")
    assert parse_flag("sql=./a") == (None, "sql", "./a")
    assert parse_flag("org/m+sql=./a") == ("org/m", "sql", "./a")
    for bad in ("=./a", "sql=", "+sql=./a"):
        with pytest.raises(ValidationError, match="BASE"):
            parse_flag(bad)
    f = tmp_path / "o.toml"
    f.write_text('["m"]\nmax_kv_size = 64\nloras = { sql = "ad/sql" }\n')
    options, per_model = split_loras(read_file(str(f)))
    assert options == {"m": {"max_kv_size": 64}}
    assert per_model == {"m": {"sql": str(tmp_path / "ad" / "sql")}}
    f.write_text('["m"]\nloras = { sql = 3 }\n')
    with pytest.raises(ValidationError, match="adapter names to folders"):
        read_file(str(f))
