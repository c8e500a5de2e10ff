"""`mlxk run --image` with a tiny random-weight Qwen2-VL against ``mlx_vlm.generate``.

The reference is mlx-vlm's own ``generate`` on the same prompt (rendered with the
model's chat template) and the same image files: greedy tokens and prompt token
counts must be identical, with no image, one and two.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.schema import assert_valid
from tests.support.tiny_vlm import MAX_TOKENS, QUESTION, reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def references(tiny_vlm_path: Path, pictures: list[Path]) -> dict[int, tuple[str, int, int]]:
    return {n: reference(tiny_vlm_path, pictures[:n]) for n in (0, 1, 2)}


@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_run_image_matches_mlx_vlm_generate(n_images: int, tiny_vlm_cached: str,
                                            pictures: list[Path], references: dict) -> None:
    args = [a for p in pictures[:n_images] for a in ("--image", str(p))]
    r = run_mlxk("run", tiny_vlm_cached, QUESTION, *args, "--temperature", "0",
                 "--max-tokens", str(MAX_TOKENS), "--json")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    text, prompt_tokens, gen_tokens = references[n_images]
    assert data["response"] == text and text.strip()
    assert data["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": gen_tokens}
    assert data["finish_reason"] == "length"
    assert data.get("images", []) == [str(p) for p in pictures[:n_images]]
    if n_images:  # the image tokens count toward the prompt
        assert prompt_tokens > references[0][1] + 4 * n_images


def test_not_an_image_is_refused(tiny_vlm_cached: str, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    r = run_mlxk("run", tiny_vlm_cached, QUESTION, "--image", str(fake), "--json")
    assert r.returncode == 1
    assert "not an image PIL can read" in r.json["error"]["message"]
    missing = run_mlxk("run", tiny_vlm_cached, QUESTION, "--image", str(tmp_path / "nope.png"))
    assert missing.returncode == 1 and "image file not found" in missing.stderr
    assert "Traceback" not in r.stderr + missing.stderr


def test_too_many_images_is_refused(tiny_vlm_cached: str, pictures: list[Path]) -> None:
    args = [a for _ in range(9) for a in ("--image", str(pictures[0]))]
    r = run_mlxk("run", tiny_vlm_cached, QUESTION, *args, "--json")
    assert r.returncode == 1
    assert "9 images; the limit is 8" in r.json["error"]["message"]


def test_image_for_text_only_model_is_refused(tiny_cached: str, pictures: list[Path]) -> None:
    r = run_mlxk("run", tiny_cached, QUESTION, "--image", str(pictures[0]), "--json")
    assert r.returncode == 1
    assert "text-only model; it does not take images" in r.json["error"]["message"]


def test_chat_image_command_attaches_to_next_turn(tiny_vlm_cached: str, pictures: list[Path],
                                                  references: dict) -> None:
    import pexpect

    argv = mlxk_argv("run", tiny_vlm_cached, "--temperature", "0", "--max-tokens", str(MAX_TOKENS))
    child = pexpect.spawn(argv[0], argv[1:], env=mlxk_env(), encoding="utf-8", timeout=240)
    try:
        child.expect(">>> ")
        child.sendline(f"/image {pictures[0].parent / 'missing.png'}")
        child.expect("image file not found")
        child.expect(">>> ")
        child.sendline(f"/image {pictures[0]}")
        child.expect(r"Image attached \(1 for the next message\)\.")
        child.expect(">>> ")
        child.sendline(QUESTION)
        child.expect(">>> ")
        assert references[1][0] in child.before
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_text_engine_loads_the_text_part_of_a_vision_model(tiny_vlm_path: Path) -> None:
    """Without the vision extra, mlx-lm runs qwen2_vl's language model (the documented fallback)."""
    from mlxk.engine.generate import complete
    from mlxk.engine.loader import load_model
    from mlxk.engine.types import GenerationRequest, SamplingParams

    lm = load_model(tiny_vlm_path, name="tiny-vl")
    req = GenerationRequest(messages=[{"role": "user", "content": QUESTION}],
                            sampling=SamplingParams(temperature=0.0), max_tokens=MAX_TOKENS)
    out = complete(lm, req)
    text, prompt_tokens, _ = reference(tiny_vlm_path, [])
    assert (out.text, out.prompt_tokens) == (text, prompt_tokens)


def test_image_with_hosts_is_a_usage_error(tiny_vlm_cached: str, pictures: list[Path]) -> None:
    r = run_mlxk("run", tiny_vlm_cached, QUESTION, "--image", str(pictures[0]),
                 "--hosts", "127.0.0.1,127.0.0.2", "--json")
    assert r.returncode == 2
    assert "--image is not supported with --hosts" in r.json["error"]["message"]
