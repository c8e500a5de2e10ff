"""What a model is (framework, type, capabilities) and whether the installed MLX stack can run it.

Pure file reading: config.json, tokenizer_config.json / chat_template files, the
sentence-transformers layout, a README's front matter and safetensors headers.
Never imports mlx, mlx-lm, mlx-embeddings or transformers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlxk import config as mlxk_config
from mlxk.cache import runtime
from mlxk.cache.safetensors import HeaderError, read_header

ENCODER_TYPES = {"bert", "roberta", "xlm_roberta", "distilbert", "mpnet", "modernbert", "nomic_bert",
                 "electra", "deberta", "deberta_v2", "camembert", "albert", "e5"}
# Architectures (config.json) that are encoders without a language-model head.
ENCODER_ARCH_SUFFIXES = ("Model", "ForSentenceEmbedding", "ForTextEmbedding")
ST_MARKERS = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json",
              "1_Pooling/config.json")
CHAT_NAME_HINT = re.compile(r"(instruct|chat|[-_]it\b|[-_]it[-_])", re.IGNORECASE)
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
PathLike = str | Path
Files = dict[str, PathLike]


@dataclass(frozen=True)
class ModelDescription:
    framework: str                       # MLX | GGUF | PyTorch | Unknown
    model_type: str                      # chat | base | embedding | unknown
    capabilities: tuple[str, ...]
    runtime_compatible: bool
    runtime_reason: str | None
    architecture: str | None             # config["model_type"] (the family)
    architectures: tuple[str, ...] = ()  # config["architectures"]
    quantization: str | None = None      # "4bit", "mxfp4", ...
    has_chat_template: bool = False
    embedding_dim: int | None = None
    engine: str | None = None            # mlx-lm | mlx-vlm | mlx-embeddings (None: none can run it)
    config: dict | None = field(default=None, repr=False, compare=False)
    config_error: str | None = None      # why config.json could not be used


def local_files(path: Path) -> dict[str, Path]:
    """Relative name -> path for every file below a local model directory."""
    out: dict[str, Path] = {}
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(path).as_posix()] = p
    return out


def read_bytes(path: PathLike) -> bytes:
    """Whole file through a raw descriptor: open, read until EOF, close (no buffered object)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunk) < (1 << 20):
                break  # short read on a regular file: EOF reached
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_json(path: PathLike | None) -> tuple[dict | None, str | None]:
    """(data, error). ``error`` is ``missing``, ``empty`` or ``invalid``."""
    if path is None:
        return None, "missing"
    try:
        raw = read_bytes(path)
    except OSError:
        return None, "missing"
    if not raw.strip():
        return None, "empty"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "invalid"
    return (data, None) if isinstance(data, dict) else (None, "invalid")


def chat_template(files: Files) -> str | None:
    for name in TEMPLATE_FILES:
        if name in files:
            try:
                with open(files[name], encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            if name.endswith(".json"):
                try:
                    text = json.loads(text).get("chat_template") or ""
                except (ValueError, AttributeError):
                    continue
            if text:
                return text if isinstance(text, str) else json.dumps(text)
    path = files.get("tokenizer_config.json")
    if path is None:
        return None
    try:
        raw = read_bytes(path)
    except OSError:
        return None
    if b'"chat_template"' not in raw:  # most base models: no need to parse a large JSON
        return None
    try:
        tok = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    tpl = tok.get("chat_template") if isinstance(tok, dict) else None
    if isinstance(tpl, list):  # named templates: [{"name", "template"}]
        return "\n".join(str(t.get("template", "")) for t in tpl if isinstance(t, dict)) or None
    return tpl if isinstance(tpl, str) and tpl else None


def quantization_label(cfg: dict | None) -> str | None:
    if not cfg:
        return None
    q = cfg.get("quantization")
    if isinstance(q, dict):
        mode = q.get("mode", "affine")
        return f"{q.get('bits')}bit" if mode == "affine" else str(mode)
    qc = cfg.get("quantization_config")
    if isinstance(qc, dict):
        if "bits" in qc:
            return f"{qc['bits']}bit"
        return str(qc.get("quant_method")) if qc.get("quant_method") else None
    return None


def _readme_says_mlx(files: Files) -> bool:
    p = files.get("README.md")
    if p is None:
        return False
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    if not head.startswith("---"):
        return False
    front = head[3:].split("\n---", 1)[0]
    return bool(re.search(r"^library_name:\s*['\"]?mlx['\"]?\s*$", front, re.MULTILINE)
                or re.search(r"^\s*-\s*['\"]?mlx['\"]?\s*$", front, re.MULTILINE))


def framework(files: Files, cfg: dict | None, repo_id: str | None) -> str:
    names = list(files)
    st = [n for n in names if n.endswith(".safetensors")]
    gguf = [n for n in names if n.lower().endswith(".gguf")]
    other = [n for n in names if n.endswith((".bin", ".pt", ".pth")) and "training_args" not in n]
    if gguf and not st:
        return "GGUF"
    if _is_mlx(files, st, cfg, repo_id):
        return "MLX"
    if st or other:
        return "PyTorch"
    return "Unknown"


def _is_mlx(files: Files, st: list[str], cfg: dict | None, repo_id: str | None) -> bool:
    if cfg and isinstance(cfg.get("quantization"), dict):
        return True
    if repo_id and repo_id.lower().startswith(mlxk_config.MLX_COMMUNITY_ORG + "/"):
        return True
    if st:
        try:
            if read_header(files[sorted(st)[0]]).format == "mlx":
                return True
        except HeaderError:
            pass
    return _readme_says_mlx(files)


def template_supports_tools(template: object) -> bool:
    """The one rule for "the chat template renders tools": it uses the ``tools`` variable.
    (``show``'s tools capability, the prompt renderer and the server all ask here.)"""
    return isinstance(template, str) and "tools" in template


def is_embedding(files: Files, cfg: dict | None) -> bool:
    """The one rule for "this is an embedding model" (list, show, run, embed, serve all ask here):
    a sentence-transformers layout, or an encoder family whose architectures (if listed) are a
    bare encoder (``BertModel``, ``...ForSentenceEmbedding``), not an LM head (``...ForMaskedLM``)."""
    if any(m in files for m in ST_MARKERS):
        return True
    if not cfg:
        return False
    mt = str(cfg.get("model_type") or "").lower().replace("-", "_")
    archs = [str(a) for a in (cfg.get("architectures") or [])]
    if mt in ENCODER_TYPES:
        return not archs or any(a.endswith(ENCODER_ARCH_SUFFIXES) for a in archs)
    return False


def _dense_out_features(files: Files) -> int | None:
    """Output size of the last sentence-transformers Dense module, if the model has one."""
    path = files.get("modules.json")
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            modules = json.loads(f.read())
    except (TypeError, OSError, ValueError, UnicodeDecodeError):
        return None
    dense = [str(m.get("path")) for m in modules if isinstance(m, dict)
             and str(m.get("type", "")).endswith(".Dense")] if isinstance(modules, list) else []
    last, _ = load_json(files.get(f"{dense[-1]}/config.json")) if dense else (None, None)
    out = (last or {}).get("out_features")
    return out if isinstance(out, int) else None


def _embedding_dim(files: Files, cfg: dict | None) -> int | None:
    dense = _dense_out_features(files)
    if dense:
        return dense
    pooling, _ = load_json(files.get("1_Pooling/config.json"))
    if pooling and isinstance(pooling.get("word_embedding_dimension"), int):
        return pooling["word_embedding_dimension"]
    hidden = (cfg or {}).get("hidden_size")
    return hidden if isinstance(hidden, int) else None


def _capabilities(model_type: str, cfg: dict | None, template: str | None,
                  files: Files) -> tuple[str, ...]:
    if model_type == "embedding":
        return ("embeddings",)
    if model_type == "unknown" and not cfg:
        return ()
    caps = ["text-generation"]
    if model_type == "chat":
        caps.append("chat")
    if cfg and (cfg.get("vision_config") or "preprocessor_config.json" in files):
        caps.append("vision")
    if template_supports_tools(template):
        caps.append("tools")
    mt = str((cfg or {}).get("model_type") or "")
    if (template and ("<think>" in template or "<|channel|>" in template)) or mt == "gpt_oss":
        caps.append("reasoning")
    return tuple(caps)


def runtime_check(files: Files, cfg: dict | None, model_type: str,
                  config_error: str | None) -> tuple[bool, str | None]:
    names = list(files)
    st = [n for n in names if n.endswith(".safetensors")]
    if not st:
        if any(n.lower().endswith(".gguf") for n in names):
            return False, "GGUF weights: run 'mlxk convert' first"
        if any(n.endswith((".bin", ".pt", ".pth")) for n in names):
            return False, "PyTorch .bin weights only: safetensors required"
        if cfg is None:
            return False, f"config.json {config_error or 'missing'}"
        return False, "no weights found"
    if cfg is None:
        return False, f"config.json {config_error or 'missing'}"
    if model_type == "embedding":
        ok, reason = runtime.embeddings_supports(cfg)
    else:
        ok, reason = runtime.lm_supports(cfg)
        if not ok and cfg.get("vision_config"):  # mlx-vlm may run what mlx-lm cannot
            vok, vreason = runtime.vlm_supports(cfg)
            ok, reason = vok, (None if vok else f"{reason}; {vreason}")
    if not ok:
        return ok, reason
    return runtime.quantization_supported(cfg)


CONTEXT_KEYS = ("max_position_embeddings", "max_seq_len", "n_positions", "seq_length", "n_ctx")


def config_value(cfg: dict | None, *keys: str) -> object:
    """The first of ``keys`` set in ``cfg`` or its ``text_config`` (multimodal configs)."""
    for source in (cfg or {}, (cfg or {}).get("text_config") or {}):
        for k in keys:
            if isinstance(source, dict) and source.get(k) is not None:
                return source[k]
    return None


def context_length(cfg: dict | None) -> int | None:
    """The context window a config declares (what ``show`` reports as ``context_length``)."""
    value = config_value(cfg, *CONTEXT_KEYS)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe(path: Path, files: Files | None = None, repo_id: str | None = None,
             cfg: dict | None = None, config_error: str | None = None) -> ModelDescription:
    """Describe the model in ``path`` (a snapshot or a local directory).

    ``files`` maps relative names to readable paths (the cache passes only files
    whose symlinks resolve inside the repo); by default the directory is walked.
    """
    if files is None:
        files = local_files(Path(path))
    if cfg is None and config_error is None:
        cfg, config_error = load_json(files.get("config.json"))
    template = chat_template(files) if cfg is not None or files else None
    if is_embedding(files, cfg):
        model_type = "embedding"
    elif cfg is None:
        model_type = "unknown"
    elif template or CHAT_NAME_HINT.search(repo_id or Path(path).name):
        model_type = "chat"
    else:
        model_type = "base"
    ok, reason = runtime_check(files, cfg, model_type, config_error)
    archs = (cfg or {}).get("architectures") or ()
    return ModelDescription(
        framework=framework(files, cfg, repo_id),
        model_type=model_type,
        capabilities=_capabilities(model_type, cfg, template, files),
        runtime_compatible=ok,
        runtime_reason=reason,
        architecture=(cfg or {}).get("model_type"),
        architectures=tuple(str(a) for a in archs) if isinstance(archs, list) else (),
        quantization=quantization_label(cfg),
        has_chat_template=bool(template),
        embedding_dim=_embedding_dim(files, cfg) if model_type == "embedding" else None,
        engine=runtime.engine_for(cfg, model_type) if ok else None,
        config=cfg,
        config_error=config_error,
    )
