"""OpenAI conformance that needs real text: the real SmolLM2 behind `mlxk serve`, judged by `openai`.

The peers' own suites (llama.cpp, mlx-lm, vLLM) check these: the completion is exactly
the decoded tokens (the first token keeps its leading space), the logprob tokens join to
the text, ``n`` choices, prompt lists and ``echo``. One server per module, short answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

M = SMOLLM2_REPO_ID
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {M: build_smollm2()})
    sp = start_serve(home, "--keep-alive", "-1", log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", timeout=600, max_retries=0)


def ask(country: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is the capital of {country}?"}]


def test_completion_keeps_the_first_tokens_space_and_tokens_join(client: openai.OpenAI) -> None:
    r = client.completions.create(model=M, prompt=PROMPT, temperature=0, max_tokens=4, logprobs=2)
    c = r.choices[0]
    assert c.text.startswith(" Paris"), c.text
    assert "".join(c.logprobs.tokens) == c.text
    assert c.logprobs.tokens[0] == " Paris"
    assert c.logprobs.text_offset[0] == 0 and len(c.logprobs.tokens) == r.usage.completion_tokens
    assert " Paris" in c.logprobs.top_logprobs[0]


def test_streamed_completion_is_the_same_text_and_tokens(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=M, prompt=PROMPT, temperature=0, max_tokens=4,
                                            logprobs=0, stream=True))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    tokens = [t for ch in chunks if ch.choices and ch.choices[0].logprobs
              for t in ch.choices[0].logprobs.tokens]
    assert text.startswith(" Paris"), text
    assert "".join(tokens) == text


def test_chat_logprob_tokens_join_to_the_content(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=M, messages=ask("France"), temperature=0, max_tokens=10,
                                       logprobs=True, top_logprobs=2)
    content = r.choices[0].message.content
    assert "Paris" in content
    lp = r.choices[0].logprobs.content
    assert "".join(t.token for t in lp) == content
    assert all(bytes(t.bytes) == t.token.encode() for t in lp)
    assert all(len(t.top_logprobs) == 2 for t in lp)


def test_streamed_chat_logprob_tokens_join_to_the_content(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=M, messages=ask("France"), temperature=0,
                                                 max_tokens=10, logprobs=True, stream=True))
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    tokens = [t.token for ch in chunks if ch.choices and ch.choices[0].logprobs
              for t in ch.choices[0].logprobs.content]
    assert "Paris" in content
    assert "".join(tokens) == content


def test_n_chat_choices(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=M, messages=ask("France"), temperature=0, max_tokens=10, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert all("Paris" in c.message.content for c in r.choices)
    one = client.chat.completions.create(model=M, messages=ask("France"), temperature=0, max_tokens=10)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens


def test_a_list_of_prompts_answers_each_in_order(client: openai.OpenAI) -> None:
    r = client.completions.create(model=M, prompt=[PROMPT, "The capital of Germany is"], temperature=0,
                                  max_tokens=3, stream=False)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text.startswith(" Paris") and r.choices[1].text.startswith(" Berlin")
    chunks = list(client.completions.create(model=M, prompt=[PROMPT, "The capital of Germany is"],
                                            temperature=0, max_tokens=3, stream=True))
    streamed = ["".join(ch.choices[0].text for ch in chunks if ch.choices and ch.choices[0].index == i)
                for i in (0, 1)]
    assert streamed == [c.text for c in r.choices]


def test_echo_scores_the_prompt_as_generation_would(client: openai.OpenAI) -> None:
    answer = client.completions.create(model=M, prompt=PROMPT, temperature=0, max_tokens=1, logprobs=0)
    paris = answer.choices[0].logprobs.token_logprobs[0]
    r = client.completions.create(model=M, prompt=PROMPT + " Paris", temperature=0, max_tokens=1,
                                  echo=True, logprobs=1)
    lp = r.choices[0].logprobs
    n = r.usage.prompt_tokens
    assert r.choices[0].text.startswith(PROMPT + " Paris")
    assert lp.tokens[n - 1] == " Paris" and lp.token_logprobs[0] is None
    assert "".join(lp.tokens) == r.choices[0].text
    # The prompt token " Paris" scores what the model gave it when it generated it.
    assert abs(lp.token_logprobs[n - 1] - paris) < 0.05, (lp.token_logprobs[n - 1], paris)
    assert lp.top_logprobs[n - 1] == {" Paris": pytest.approx(lp.token_logprobs[n - 1], abs=1e-4)}
