#!/usr/bin/env python3
"""Regenerate the generated parts of the docs from the CLI itself.

- ``docs/commands.md``: the ``--help`` output of ``mlxk`` and of every command.
- ``docs/json-api.md``: the field tables between ``<!-- BEGIN GENERATED ... -->``
  markers, rendered from the shipped JSON Schemas (``src/mlxk/schemas/*.json``).

Run it after changing a command's flags, help text or a schema:

    python scripts/gen_docs.py          # rewrite the files
    python scripts/gen_docs.py --check  # exit 1 when a file is out of date

The tests fail when the checked-in files differ from a fresh generation.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

COLUMNS = 100
COMMANDS_MD = ROOT / "docs" / "commands.md"
JSON_API_MD = ROOT / "docs" / "json-api.md"
SCHEMA_DIR = SRC / "mlxk" / "schemas"
GEN_BEGIN = "<!-- BEGIN GENERATED: schema fields (scripts/gen_docs.py) -->"
GEN_END = "<!-- END GENERATED: schema fields -->"
ERR_BEGIN = "<!-- BEGIN GENERATED: error types (scripts/gen_docs.py) -->"
ERR_END = "<!-- END GENERATED: error types -->"

# What each error type means for a user (keyed by the JSON error.type).
ERROR_NOTES = {
    "InternalError": "a bug: please report it (run with `MLXK_DEBUG=1` for the traceback)",
    "ValidationError": "a bad model name or argument value (empty, too long, `..`, backslash ...)",
    "CommandError": "a usage error: unknown flag, missing argument (exit code 2)",
    "model_not_found": "no cached model matches the name",
    "ambiguous_match": "several cached models match; `matches` lists them",
    "hash_not_found": "no cached revision starts with that hash; `available_hashes` lists them",
    "access_denied": "the Hub refused: gated or private repo, or a missing/invalid `HF_TOKEN`",
    "download_failed": "the download broke off; run `pull` again to resume",
    "requires_confirmation": "rm or prune needs a confirmation it could not get: use the exact name with `--force`",
    "locks_present": "another process is downloading this model right now",
    "permission_denied": "the file system refused (read-only cache, foreign owner)",
    "deletion_failed": "rm could not remove every file",
    "execution_error": "the command could not do its job (details in the message)",
    "not_runtime_compatible": "the installed MLX stack cannot run this model; the message says why",
    "feature_disabled": "an experimental feature that is switched off (`push`)",
    "authentication_error": "server: missing or wrong API key",
    "request_too_large": "server: the request body is over the size limit",
    "server_busy": "server: the admission queue is full; retry after `Retry-After` seconds",
    "offline": "`HF_HUB_OFFLINE=1` is set and the command needs the Hub",
    "server_unreachable": "`ps`/`load`/`stop`: no `mlxk serve` answers at `url` (`--server`, `MLXK_SERVER`)",
    "server_error": "`ps`/`load`/`stop`: the server refused; its own error code is the `type` when it sent one",
}

# Meanings for fields whose schema has no "description" (by path under `data`, then by name).
FIELD_NOTES = {
    "name": "`org/name` (a local directory: its absolute path)",
    "hash": "40-hex commit of the selected revision (null for a local directory)",
    "size_bytes": "bytes of the revision's files, each blob counted once",
    "last_modified": "ISO-8601 UTC timestamp ending in `Z`",
    "framework": "weights format family",
    "model_type": "what the model is for",
    "capabilities": "e.g. `text-generation`, `chat`, `embeddings`, `vision`, `tools`, `reasoning`",
    "health": "file integrity verdict",
    "runtime_compatible": "the installed MLX stack can run it",
    "reason": "first problem found (integrity before runtime); null when both pass",
    "cached": "true for cache models, false for local directories",
    "quantization": "e.g. `4bit`; null when not quantized",
    "list:count": "number of entries in `models`",
    "embed:count": "number of input texts",
    "model": "the resolved model name",
    "embed:embeddings": "one record per input text, in input order",
    "embed:embeddings[].text": "the input text (JSONL input: its other fields pass through)",
    "embed:truncated_count": "inputs cut to the model's token limit",
    "embed:max_tokens": "the model's input limit in tokens",
    "embed:pooling": "from the model's sentence-transformers config",
    "embed:normalized": "vectors are L2-normalised",
    "verified": "true with `--verify` (blob digests recomputed)",
    "usage.prompt_tokens": "tokens of the input",
    "usage.total_tokens": "all tokens processed",
    "summary.total": "revisions checked",
    "summary.healthy_count": "entries in `healthy`",
    "summary.unhealthy_count": "entries in `unhealthy`",
    "push:repo_id": "target repo `org/name`",
    "push:source": "the local folder",
    "push:private": "push only writes private repos",
    "push:url": "the commit's URL on the Hub (null without an upload)",
    "push:files": "files in the folder",
    "push:bytes": "bytes in the folder",
    "push:changes": "with `--dry-run`: what would be added, changed, deleted",
    "push:checks": "local checks of the folder (config, weights, index)",
    "push:checks.ok": "no problem found",
    "push:checks.problems": "problems that block the upload",
    "push:checks.warnings": "things worth a look",
    "serve:host": "bound address",
    "serve:port": "bound port",
    "serve:model": "the preloaded model (`--model`), or null",
    "serve:pid": "process id of the server",
    "metadata": "facts read from config.json, tokenizer and safetensors headers",
    "metadata.architecture": "`architectures[0]` of config.json",
    "metadata.context_length": "maximum context in tokens",
    "metadata.vocab_size": "tokenizer vocabulary size",
    "metadata.hidden_size": "model width",
    "metadata.num_attention_heads": "attention heads",
    "metadata.num_hidden_layers": "transformer layers",
    "metadata.parallel_modes": "distributed modes the architecture supports (`--parallel`)",
    "metadata.revisions[].refs": "refs pointing at this commit (e.g. `main`)",
    "files[].type": "what the file is for",
    "system.platform": "operating system and machine",
    "serve:ranks": "number of ranks (with `--hosts`)",
    "serve:parallel": "how the model is split (with `--hosts`)",
    "push:changes.added": "files new on the Hub",
    "push:changes.added[].path": "path inside the repo",
    "push:changes.changed": "files whose content differs",
    "push:changes.changed[].path": "path inside the repo",
    "push:changes.deleted": "files on the Hub that are not in the folder",
    "push:changes.deleted[].path": "path inside the repo",
    "push:changes.unchanged": "files already identical on the Hub",
    "run:prompt": "the prompt as given (stdin text included)",
    "run:response": "the answer (reasoning not included)",
    "run:reasoning": "the thinking of a reasoning model",
    "run:tool_calls": "tool calls the model made",
    "usage.completion_tokens": "tokens generated",
    "timing.load_s": "seconds to load the model",
    "timing.ttft_s": "seconds to the first token",
    "timing.prompt_tps": "prompt tokens per second",
    "timing.generation_tps": "generated tokens per second",
    "timing.total_s": "seconds for the whole run",
    "timing.peak_memory_bytes": "peak MLX memory",
    "backend": "MLX distributed backend",
    "hosts": "one entry per rank",
    "hosts[].rank": "rank number (0 owns the output / HTTP)",
    "hosts[].ssh": "ssh name of the host",
    "hosts[].ips": "addresses the ranks use to talk to each other",
    "plan": "how the model is split",
    "plan.mode": "`tensor` (split every layer) or `pipeline` (split the layer stack)",
    "plan.world_size": "number of ranks",
    "plan.family": "model family (architecture)",
    "plan.num_layers": "transformer layers",
    "plan.attention_heads": "attention heads of the model",
    "plan.kv_heads": "key/value heads of the model",
    "plan.total_bytes": "weight bytes of the whole model",
    "plan.supported_modes": "modes this model can be split with",
    "plan.ranks": "what each rank holds",
    "plan.ranks[].rank": "rank number",
    "plan.ranks[].layers": "layers on this rank",
    "plan.ranks[].attention_heads": "attention heads on this rank (tensor mode)",
    "plan.ranks[].kv_heads": "key/value heads on this rank (tensor mode)",
    "plan.ranks[].bytes": "weight bytes on this rank",
    "system.memory_total_bytes": "physical memory",
    "problems": "every problem found, first = `reason`",
    "runtime_reason": "why the installed MLX stack cannot run it (null when it can)",
    "metadata.model_type": "architecture family from config.json",
    "metadata.chat_template": "the tokenizer carries a chat template",
    "metadata.parameter_count": "from the safetensors headers",
    "metadata.revisions": "every cached commit with the refs pointing at it",
    "metadata.embedding_dimension": "vector size of an embedding model",
    "show:files": "only with `--files`",
    "show:config": "the parsed config.json; only with `--config`",
    "rm:files": "the files that go (or would go)",
    "models": "one model object per repo, sorted by name (`list --sort size|modified`: largest/newest first)",
    "healthy": "entries that passed every check",
    "unhealthy": "entries with a problem; `reason` names the first one",
    "status": "`healthy` or `unhealthy`",
    "summary": "counts over the checked revisions",
    "download_status": "outcome of the pull",
    "commit_hash": "the commit concerned",
    "bytes_downloaded": "bytes fetched in this run (0 when already cached)",
    "action": "what rm did (or would do)",
    "freed_bytes": "bytes freed (or that would be freed with `--dry-run`)",
    "message": "human-readable summary",
    "cli_version": "the mlxk version",
    "json_api_spec_version": "version of this JSON API",
    "system": "where mlxk runs",
    "system.mlx_device": "the MLX device (`gpu` or `cpu`), reported without importing MLX when possible",
    "usage": "real token counts",
    "finish_reason": "`stop`, `length` or `tool_calls`",
    "timing": "seconds and tokens/s of this run",
    "dimensions": "vector length",
    "embedding": "the L2-normalised vector",
}

# Every environment variable mlxk reads (found in src/mlxk by scripts/gen_docs.py), explained.
ENV_NOTES = {
    "HF_HOME": "HuggingFace home; the cache is `$HF_HOME/hub` (default `~/.cache/huggingface`)",
    "XDG_CACHE_HOME": "used for the default `HF_HOME` (`$XDG_CACHE_HOME/huggingface`)",
    "HF_HUB_CACHE": "the hub cache folder itself (wins over `HF_HOME`)",
    "HUGGINGFACE_HUB_CACHE": "legacy name of `HF_HUB_CACHE`",
    "HF_TOKEN": "Hub token for gated/private repos (`pull`) and uploads (`push`)",
    "HUGGING_FACE_HUB_TOKEN": "legacy name of `HF_TOKEN`",
    "HF_ENDPOINT": "another Hub: a mirror or a local server (default `https://huggingface.co`)",
    "HF_HUB_OFFLINE": "`1`: never contact the Hub; `pull` fails with `offline`",
    "MLXK2_ENABLE_EXPERIMENTAL_PUSH": "`1` enables the experimental `push` command",
    "MLXK_DEBUG": "`1` adds tracebacks to error output (CLI and server)",
    "MLXK_API_KEY": "API key `serve` requires (same as `--api-key`, but not visible in `ps`); `ps`/`load`/`stop` send it",
    "MLXK_SERVER": "the server `ps`, `load` and `stop` talk to (default `http://127.0.0.1:8000`; `--server` wins)",
    "MLXK_JSON": "`1` makes `--json` the default for every command",
    "MLXK_BLAS": "Linux CPU: path of a BLAS library for MLX's matrix products, or `reference` for the one the mlx wheel bundles",
    "MLXK_CPU_KERNELS": "Linux CPU: `off` keeps MLX's own quantized matmul instead of mlxk's compiled kernel (docs/cpu-kernels.md)",
    "MLXK_CPU_KERNELS_DIR": "where mlxk compiles its CPU kernels (default `~/.cache/mlxk/cpu-kernels`, one folder per mlx version)",
    "MLXK_CPU_KERNELS_CXX": "the C++ compiler for mlxk's CPU kernels (default: `CXX`, else `g++`, `c++`, `clang++`)",
    "CXX": "the C++ compiler for mlxk's CPU kernels when `MLXK_CPU_KERNELS_CXX` is unset",
    "MLXK_DIST_PORT": "distributed: first TCP port of the ring backend (one more per rank and IP; default 32323 across hosts, free loopback ports on one machine)",
    "MLXK_DIST_TIMEOUT": "distributed: seconds a collective may wait before the run fails",
    "MLXK_DIST_HEARTBEAT": "distributed: seconds between rank heartbeats",
    "MLXK_DIST_VERBOSE": "distributed: `1` shows the ring backend's connection messages",
}
# Read by mlxk but not user settings (set by launchers / Python itself).
ENV_INTERNAL = {"PYTHONPATH", "MLX_RANK"}
_ENV_READ = re.compile(r"""(?:_env|_is_true|environ\.get|env_value|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
                       r"""|environ\[["']([A-Z][A-Z0-9_]+)["']\]""")


def env_vars_read() -> list[str]:
    """Every environment variable the package reads, sorted."""
    found: set[str] = set()
    for path in (SRC / "mlxk").rglob("*.py"):
        for m in _ENV_READ.finditer(path.read_text()):
            found.add(m.group(1) or m.group(2))
    return sorted(found - ENV_INTERNAL)


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# --------------------------------------------------------------------------- --help capture
def help_text(argv: list[str]) -> str:
    """What ``mlxk ARGV --help`` prints, at a fixed width, without colors."""
    from mlxk.cli.main import main

    os.environ["COLUMNS"] = str(COLUMNS)
    os.environ["NO_COLOR"] = "1"
    os.environ["PYTHON_COLORS"] = "0"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return buf.getvalue().rstrip() + "\n"


def render_commands_md() -> str:
    from mlxk.cli.cli_spec import cli_spec

    spec = cli_spec()
    lines = [
        "# Command reference",
        "",
        "<!-- Generated by scripts/gen_docs.py from the CLI's own --help. Do not edit by hand:",
        "     change the command, then run `python scripts/gen_docs.py`. -->",
        "",
        f"Every command's `--help`, verbatim (Python {python_version()} argparse, {COLUMNS} columns).",
        "`--json` works with every command, before or after the command name. Exit codes:",
        "0 success, 1 error, 2 usage error (see [the JSON API](json-api.md#exit-codes)).",
        "",
        "| command | purpose |",
        "|---|---|",
    ]
    for c in spec.commands:
        alias = f" (alias: {', '.join(f'`{a}`' for a in c.aliases)})" if c.aliases else ""
        lines.append(f"| [`mlxk {c.name}`](#mlxk-{c.name}){alias} | {c.help} |")
    lines += ["", "## mlxk", "", "```text", help_text([]).rstrip(), "```", ""]
    for c in spec.commands:
        lines += [f"## mlxk {c.name}", ""]
        if c.aliases:
            lines += [f"Aliases: {', '.join(f'`mlxk {a}`' for a in c.aliases)}", ""]
        lines += ["```text", help_text([c.name]).rstrip(), "```", ""]
    lines += ["## Environment variables", "", "| variable | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {ENV_NOTES.get(name, '')} |" for name in env_vars_read()]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- schema tables
def load_schemas() -> dict[str, dict[str, Any]]:
    """``{name: schema}`` for every shipped schema, shared ``$defs`` inlined."""
    from mlxk.schemas import load_schema, schema_names

    return {name: load_schema(name) for name in schema_names()}


def schema_command(name: str, schema: dict[str, Any]) -> str:
    """The ``command`` value an envelope of this schema carries (``const``), else the file name."""
    command = schema.get("properties", {}).get("command", {})
    if isinstance(command, dict):
        if "const" in command:
            return str(command["const"])
        if command.get("enum") and len(command["enum"]) == 1:
            return str(command["enum"][0])
    return name


def _deref(node: Any, root: dict[str, Any]) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
        seen += 1
    return node


def _type_of(node: Any, root: dict[str, Any]) -> str:
    node = _deref(node, root)
    if not isinstance(node, dict):
        return "any"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " \\| ".join(dict.fromkeys(_type_of(n, root) for n in node[key]))
    if "allOf" in node and "type" not in node:
        return _type_of(node["allOf"][0], root)
    t = node.get("type", "any")
    if isinstance(t, list):
        return " \\| ".join(str(x) for x in t)
    if t == "array":
        return f"array of {_type_of(node.get('items', {}), root)}"
    return str(t)


def _object_branch(node: Any, root: dict[str, Any]) -> dict[str, Any] | None:
    node = _deref(node, root)
    if not isinstance(node, dict):
        return None
    if "properties" in node:
        return node
    if node.get("type") == "array" or "items" in node:
        return _object_branch(node.get("items", {}), root)
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, []):
            found = _object_branch(sub, root)
            if found is not None:
                return found
    return None


def _data_schema(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """The (non-empty, not-null) schema of ``data`` in a success envelope, wherever it is nested."""
    node = _deref(node, root)
    if not isinstance(node, dict) or depth > 6:
        return None
    data = node.get("properties", {}).get("data")
    if data and _object_branch(data, root) is not None:
        return data
    for key in ("then", "allOf", "anyOf", "oneOf"):
        subs = node.get(key)
        for sub in subs if isinstance(subs, list) else [subs] if subs else []:
            found = _data_schema(sub, root, depth + 1)
            if found is not None:
                return found
    return None


def _variant_label(node: Any, root: dict[str, Any], index: int) -> str:
    if isinstance(node, dict):
        if node.get("title"):
            return str(node["title"])
        ref = node.get("$ref", "")
        if ref:
            target = _deref(node, root)
            if isinstance(target, dict) and target.get("title"):
                return str(target["title"])
            return ref.rsplit("/", 1)[-1].replace("_", " ")
        props = set(node.get("properties", {}))
        if {"response", "finish_reason"} <= props:
            return "the answer"
        if {"host", "port"} <= props:
            return "the startup line"
        if {"plan", "hosts"} <= props:
            return "shard plan"
    return f"variant {index + 1}"


def data_variants(schema: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """``[(label, object schema)]`` of what ``data`` can be; one unlabelled entry when it is one shape."""
    data = _data_schema(schema, schema)
    if data is None:
        return []
    node = _deref(data, schema)
    for key in ("oneOf", "anyOf"):
        branches = [(b, _object_branch(b, schema)) for b in node.get(key, [])] if isinstance(node, dict) else []
        objects = [(b, o) for b, o in branches if o is not None]
        if len(objects) > 1:
            return [(_variant_label(b, schema, i), o) for i, (b, o) in enumerate(objects)]
    found = _object_branch(data, schema)
    return [(None, found)] if found is not None else []


def _rows(node: dict[str, Any], root: dict[str, Any], prefix: str, depth: int,
          command: str) -> list[str]:
    rows = []
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        sub_d = _deref(sub, root)
        path = f"{prefix}{key}"
        desc = " ".join(str(sub_d.get("description", "")).split()) if isinstance(sub_d, dict) else ""
        desc = desc or FIELD_NOTES.get(f"{command}:{path}") or FIELD_NOTES.get(path) \
            or FIELD_NOTES.get(key, "")
        req = "yes" if key in required else ""
        rows.append(f"| `{path}` | {_type_of(sub, root)} | {req} | {desc.replace('|', '/')} |")
        child = _object_branch(sub, root)
        if child is not None and depth < 4:
            suffix = "[]." if _deref(sub, root).get("type") == "array" else "."
            rows += _rows(child, root, path + suffix, depth + 1, command)
    return rows


def render_schema_tables(schemas: dict[str, dict[str, Any]]) -> str:
    parts = [GEN_BEGIN, ""]
    for name, schema in schemas.items():
        command = schema_command(name, schema)
        parts += [f"### `{command}`", "",
                  f"Schema: [`src/mlxk/schemas/{_schema_file(name)}`]"
                  f"(../src/mlxk/schemas/{_schema_file(name)})", ""]
        title = " ".join(str(schema.get("title", "")).split())
        if title.startswith("mlxk "):
            parts += [f"Envelope of `{title}`.", ""]
        if schema.get("description"):
            parts += [" ".join(str(schema["description"]).split()), ""]
        variants = data_variants(schema)
        if not variants:
            parts += ["`data` carries no fixed fields.", ""]
            continue
        if len(variants) > 1:
            parts += [f"`data` has one of {len(variants)} shapes: "
                      + ", ".join(f"*{label}*" for label, _ in variants) + ".", ""]
        for label, data in variants:
            if label:
                parts += [f"`data` as *{label}*" + (f" ({data['description']})" if data.get("description") else "")
                          + ":", ""]
            parts += ["| field (under `data`) | type | required | meaning |", "|---|---|---|---|"]
            parts += _rows(data, schema, "", 0, command)
            parts.append("")
    parts.append(GEN_END)
    return "\n".join(parts)


def _schema_file(name: str) -> str:
    return f"{name}.json"


def error_classes() -> list[type]:
    """Every ``MlxkError`` subclass, in the order errors.py declares them."""
    from mlxk import errors

    seen: dict[str, type] = {}
    for obj in vars(errors).values():
        if isinstance(obj, type) and issubclass(obj, errors.MlxkError) and obj is not errors.MlxkError:
            seen.setdefault(obj.code, obj)
    return list(seen.values())


def render_error_table() -> str:
    rows = [ERR_BEGIN, "", "| `error.type` | Python class (`mlxk.errors`) | exit code | HTTP status | meaning |",
            "|---|---|---|---|---|"]
    for cls in error_classes():
        rows.append(f"| `{cls.code}` | `{cls.__name__}` | {cls.exit_code} | {cls.http_status} | "
                    f"{ERROR_NOTES.get(cls.code, '')} |")
    rows += ["", ERR_END]
    return "\n".join(rows)


def _replace_block(text: str, begin: str, end: str, block: str) -> str:
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def render_json_api_md(current: str) -> str:
    """``current`` with the generated blocks replaced (appended when the markers are missing)."""
    text = _replace_block(current, ERR_BEGIN, ERR_END, render_error_table())
    return _replace_block(text, GEN_BEGIN, GEN_END, render_schema_tables(load_schemas()))


# --------------------------------------------------------------------------- main
def generated_files() -> dict[Path, str]:
    """Every generated file with its fresh content."""
    files = {COMMANDS_MD: render_commands_md()}
    if JSON_API_MD.exists():
        files[JSON_API_MD] = render_json_api_md(JSON_API_MD.read_text())
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = ap.parse_args(argv)
    stale = []
    for path, content in generated_files().items():
        old = path.read_text() if path.exists() else ""
        if old == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for path in stale:
        verb = "out of date" if args.check else "updated"
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{shown}: {verb}", file=sys.stderr)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
