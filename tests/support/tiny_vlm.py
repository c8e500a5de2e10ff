"""A tiny random-weight Qwen2-VL, built by the tests with mlx-vlm's own model classes.

Text part: hidden 64, 2 layers; vision tower: depth 2. Tokenizer: a small byte-level BPE
with the Qwen2-VL special tokens; chat template: Qwen2-VL's. The processor files
(``preprocessor_config.json``, ``processor_config.json``, ``video_preprocessor_config.json``)
are written locally, otherwise mlx-vlm's processor would look for them on the Hub.
``max_pixels`` is small so an image is a handful of tokens.

The output rows (lm_head) of every special token and of byte tokens that are not
valid UTF-8 on their own are zeroed, so greedy output is decodable text, never an
end-of-turn token, and identical run to run: the answers are noise, the plumbing is real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxk.cache.importer import import_directory
from tests.support.fixtures_models import TEST_MODELS, _publish, _sha, bpe_tokenizer, stage_model

TINY_VLM_REPO_ID = "mlxk-test/tiny-qwen2-vl"
QUESTION = "What is in the picture?"
MAX_TOKENS = 8

# Qwen2-VL's chat template (as published with the Qwen2-VL-Instruct checkpoints).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
            "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
            "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
            "<|image_pad|>", "<|video_pad|>"]
_TEXT = [
    "The picture shows a red square on a white background.",
    "Describe the image. What colour is it? It is blue, green or red.",
    "Hello world! How are you today? I am fine, thank you.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024.",
]
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
MIN_PIXELS = 28 * 28 * 4          # 56x56: 16 patches, 4 image tokens
MAX_PIXELS = 28 * 28 * 16         # 112x112: 64 patches, 16 image tokens


def _tokenizer() -> object:
    return bpe_tokenizer(_TEXT, SPECIALS, 420)


def _unprintable_ids(tok: object) -> list[int]:
    """Special tokens and tokens whose bytes are not valid UTF-8 on their own."""
    bad = []
    for token, idx in tok.get_vocab().items():  # type: ignore[attr-defined]
        if token in SPECIALS:
            bad.append(idx)
            continue
        text = tok.decode([idx])  # type: ignore[attr-defined]
        if "\ufffd" in text or not text or not text.isprintable():
            bad.append(idx)
    return bad


def build_tiny_qwen2_vl(target: Path) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.models import qwen2_vl

    tok = _tokenizer()
    vocab_size = tok.get_vocab_size()
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    config = {
        "model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"],
        "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size, "max_position_embeddings": 4096, "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "tie_word_embeddings": False, "torch_dtype": "float32",
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "vision_config": {
            "model_type": "qwen2_vl", "depth": 2, "embed_dim": 32, "hidden_size": 64,
            "num_heads": 2, "mlp_ratio": 2, "in_channels": 3, "patch_size": 14,
            "spatial_patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
    }
    mx.random.seed(4321)
    model_config = qwen2_vl.ModelConfig.from_dict(json.loads(json.dumps(config)))
    model_config.text_config = qwen2_vl.TextConfig.from_dict(model_config.text_config)
    model_config.vision_config = qwen2_vl.VisionConfig.from_dict(config["vision_config"])
    model = qwen2_vl.Model(model_config)
    weights = dict(tree_flatten(model.parameters()))
    head = "language_model.lm_head.weight"
    rows = mx.array(_unprintable_ids(tok))
    w = weights[head]
    weights[head] = w.at[rows].multiply(mx.zeros((rows.size, w.shape[1]), dtype=w.dtype))
    mx.eval(weights)

    staging = stage_model(target, weights, config, tok, {
        "tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False,
        "clean_up_tokenization_spaces": False, "model_max_length": 4096,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "bos_token": None, "additional_special_tokens": SPECIALS[1:],
        "chat_template": QWEN2_VL_TEMPLATE,
    })
    (staging / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2_VL_TEMPLATE}))
    image = {
        "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "patch_size": 14,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "do_convert_rgb": True,
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
    }
    (staging / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    (staging / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2VLProcessor"}))
    (staging / "video_preprocessor_config.json").write_text(json.dumps(
        {**image, "video_processor_type": "Qwen2VLVideoProcessor", "fps": 2.0,
         "min_frames": 4, "max_frames": 8}, indent=2))
    (staging / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}))
    (staging / "README.md").write_text(
        "---\nlibrary_name: mlx\npipeline_tag: image-text-to-text\n---\n"
        "# tiny-qwen2-vl (random weights, tests)\n")
    return _publish(staging, target)


def tiny_vlm_dir() -> Path:
    key = _sha(Path(__file__).read_bytes())
    target = TEST_MODELS / f"tiny-qwen2-vl-{key}"
    if (target / "config.json").exists():
        return target
    TEST_MODELS.mkdir(parents=True, exist_ok=True)
    return build_tiny_qwen2_vl(target)


def cache_tiny_vlm(cache_root: Path, model_dir: Path) -> str:
    import_directory(model_dir, TINY_VLM_REPO_ID, root=cache_root)
    return TINY_VLM_REPO_ID


def write_png(path: Path, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30),
              fmt: str = "PNG") -> Path:
    """A small solid-colour image with a stripe (so the patches differ)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).rectangle([0, 0, size[0] // 3, size[1]], fill=(20, 20, 220))
    img.save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def tiny_vlm_path() -> Path:
    return tiny_vlm_dir()


@pytest.fixture
def tiny_vlm_cached(tiny_vlm_path: Path, hub_cache: Path) -> str:
    return cache_tiny_vlm(hub_cache, tiny_vlm_path)


def reference(model_dir: Path, images: list[Path], question: str = QUESTION,
              max_tokens: int = MAX_TOKENS) -> tuple[str, int, int]:
    """(text, prompt_tokens, generation_tokens) from ``mlx_vlm.generate`` (greedy), the images
    before the question in one user turn, rendered with the model's chat template."""
    from mlx_vlm import generate, load

    model, processor = load(str(model_dir))
    content = [*({"type": "image"} for _ in images), {"type": "text", "text": question}] \
        if images else question
    prompt = processor.apply_chat_template([{"role": "user", "content": content}],
                                           add_generation_prompt=True, tokenize=False)
    r = generate(model, processor, prompt, image=[str(p) for p in images] or None,
                 max_tokens=max_tokens, temperature=0.0)
    return r.text, r.prompt_tokens, r.generation_tokens


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A PNG and a JPEG of different sizes."""
    d = tmp_path_factory.mktemp("pictures")
    return [write_png(d / "red.png"), write_png(d / "green.jpg", size=(120, 90),
                                               color=(10, 200, 10), fmt="JPEG")]
