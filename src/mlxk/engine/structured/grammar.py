"""Constrained decoding with llguidance, applied as an mlx-lm logits processor.

A grammar (llguidance's serialized form) is built from a JSON schema, ``json_object``,
a regex or a Lark grammar. Each generated sequence gets its own ``LLMatcher`` wrapped in
a :class:`GrammarLogitsProcessor`; the processor turns the matcher's allowed-token
bitmask into a boolean mask and applies it with plain ``mx`` ops (``mx.where``), so it
runs on the CPU backend as well as on Metal/CUDA (llguidance's own MLX helper is a
Metal kernel).

The processor advances its matcher from the newest entries of the context mlx-lm hands
it (``engine.context_tokens``: step *n+1* is computed before token *n* is yielded).

When the grammar is complete, llguidance allows only EOS, so EOS is forced and the
generation ends. The LLTokenizer is built once per model tokenizer (about 0.5 s).
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import Any

import llguidance
import mlx.core as mx
import numpy as np

from mlxk.engine.context_tokens import NewTokens
from mlxk.engine.structured import custom
from mlxk.engine.structured.satisfiable import check_finite
from mlxk.engine.types import LoadedModel
from mlxk.errors import ValidationError

# Compact, deterministic JSON: no free whitespace (small models otherwise emit endless
# newlines), and the usual separators so the text reads naturally.
JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}

# One LLTokenizer per model tokenizer; dropped with the tokenizer when a model unloads.
_TOKENIZERS: weakref.WeakKeyDictionary[Any, llguidance.LLTokenizer] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


# ---------------------------------------------------------------- tokenizer


def ll_tokenizer(tokenizer: Any, eos_token_ids: set[int] | list[int] | None = None,
                 n_vocab: int | None = None) -> llguidance.LLTokenizer:
    """The llguidance tokenizer for an mlx-lm ``TokenizerWrapper`` (or an HF fast tokenizer).

    Cached per tokenizer object. ``eos_token_ids`` should be every end-of-turn id the
    decoder stops on, so a completed grammar forces one of them.
    """
    with _LOCK:
        hit = _TOKENIZERS.get(tokenizer)
        if hit is not None:
            return hit
    import llguidance.hf

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    eos = sorted(eos_token_ids) if eos_token_ids else None
    if eos is None:
        eos = sorted(getattr(tokenizer, "eos_token_ids", None) or []) or None
    size = len(hf) if hasattr(hf, "__len__") else None
    if n_vocab is not None and size is not None:
        n_vocab = max(n_vocab, size)
    try:
        lltok = llguidance.hf.from_tokenizer(hf, n_vocab=n_vocab, eos_token=eos)
    except ValueError as exc:  # slow (non-Rust) tokenizer
        raise ValidationError(
            f"constrained decoding needs a fast tokenizer: {exc}") from exc
    with _LOCK:
        _TOKENIZERS[tokenizer] = lltok
    return lltok


# ---------------------------------------------------------------- grammars


def _with_options(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    opts = dict(JSON_OPTIONS)
    opts.update(out.get("x-guidance") or {})
    out["x-guidance"] = opts
    return out


def json_schema_grammar(schema: Any) -> str:
    """Grammar for JSON matching ``schema`` (a dict, or ``True`` for any JSON value)."""
    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise ValidationError("JSON schema must be an object", param="response_format")
    check_finite(schema)
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(_with_options(schema))
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"invalid JSON schema: {exc}", param="response_format") from exc


def json_schema_lark(schema: dict[str, Any]) -> str:
    """A Lark fragment (``%json {...}``) embedding ``schema`` with our JSON options."""
    check_finite(schema, param="tools")
    return "%json " + json.dumps(_with_options(schema), ensure_ascii=False)


def lark_grammar(text: str, subgrammars: dict[str, str] | None = None) -> str:
    """A Lark grammar; ``subgrammars`` (Lark, by name) are what its ``@name`` items refer to."""
    if not subgrammars:
        return llguidance.LLMatcher.grammar_from_lark(text)
    return json.dumps({"grammars": [{"lark_grammar": text},
                                    *({"name": n, "lark_grammar": g} for n, g in subgrammars.items())]})


def regex_grammar(pattern: str) -> str:
    return llguidance.LLMatcher.grammar_from_regex(pattern)


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "unevaluatedItems")


def strict_schema(schema: Any) -> Any:
    """OpenAI's ``strict: true``: an object schema admits only the properties it lists.

    Every object subschema without ``additionalProperties`` (or ``unevaluatedProperties``)
    gets ``additionalProperties: false``, as OpenAI's strict mode and xgrammar's strict mode
    treat it. ``allOf`` branches are left open: each lists only part of the properties, and
    closing them one by one would forbid the others. Returns a new schema; the input is kept.
    """
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: strict_schema(v) for k, v in out[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(v) for v in out[key]]
    for key in _SUBSCHEMA_ONE:
        if key in out:
            out[key] = strict_schema(out[key])
    if isinstance(out.get("allOf"), list):
        out["allOf"] = [_strict_inside(v) for v in out["allOf"]]
    is_object = out.get("type") == "object" or (isinstance(out.get("type"), list)
                                                and "object" in out["type"]) or "properties" in out
    if is_object and "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["additionalProperties"] = False
    return out


def _strict_inside(branch: Any) -> Any:
    """An ``allOf`` branch: its nested schemas are strict, its own property list stays open."""
    if not isinstance(branch, dict):
        return branch
    closed = strict_schema(branch)
    if "additionalProperties" not in branch and isinstance(closed, dict):
        closed.pop("additionalProperties", None)
    return closed


def grammar_for_response_format(response_format: dict[str, Any] | None) -> str | None:
    """The grammar for an OpenAI ``response_format``; None for plain text.

    ``{"type": "json_object"}`` -> any JSON object; ``{"type": "json_schema",
    "json_schema": {"name", "schema", "strict"}}`` -> that schema. Anything else is a
    ValidationError (-> 400), never silently ignored.
    """
    if not response_format:
        return None
    if not isinstance(response_format, dict):
        raise ValidationError("response_format must be an object", param="response_format")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return json_schema_grammar({"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise ValidationError("response_format.json_schema must be an object "
                                  "with 'name' and 'schema'", param="response_format")
        schema = spec.get("schema", {"type": "object"})
        if spec.get("strict") is True:
            schema = strict_schema(schema)
        return json_schema_grammar(schema)
    raise ValidationError(f"unsupported response_format type {kind!r} "
                          "(supported: text, json_object, json_schema)",
                          param="response_format")


def check_grammar(grammar: str, lltok: llguidance.LLTokenizer | None = None,
                  what: str = "grammar", param: str = "response_format") -> None:
    """Raise ValidationError naming the problem when llguidance rejects ``grammar``."""
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, lltok)
    if is_error:
        detail = messages[0] if messages else "rejected by llguidance"
        raise ValidationError(f"invalid {what}: {detail}", param=param)


def check_custom_grammar(name: str, syntax: str, definition: Any, param: str = "tools") -> None:
    """A custom tool's grammar (``custom.py``): a 400 naming the tool when llguidance rejects
    it, or it is no string, or the syntax is neither ``lark`` nor ``regex``."""
    def invalid(detail: str) -> ValidationError:
        detail = detail.removeprefix("Error: ").strip()
        return ValidationError(f"custom tool {name!r}: invalid {syntax} grammar: {detail}",
                               param=param)

    if syntax not in custom.SYNTAXES:
        raise ValidationError(f"custom tool {name!r}: grammar syntax must be 'lark' or 'regex', "
                              f"not {syntax!r}", param=param)
    if not isinstance(definition, str) or not definition.strip():
        raise ValidationError(f"custom tool {name!r}: the grammar definition must be a "
                              "non-empty string", param=param)
    try:
        if syntax == "regex":
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                {"type": "string", "pattern": custom.regex_pattern(definition)})
        else:
            grammar = llguidance.LLMatcher.grammar_from_lark(definition)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, None)
    except (ValueError, TypeError) as exc:
        raise invalid(str(exc)) from exc
    if is_error:
        raise invalid(messages[0] if messages else "rejected by llguidance")


# ---------------------------------------------------------------- processor


class GrammarLogitsProcessor:
    """mlx-lm logits processor ``(tokens, logits) -> logits`` for one sequence.

    Keep one instance per sequence (it owns a matcher); it is stateful.
    """

    def __init__(self, lltok: llguidance.LLTokenizer, grammar: str,
                 eos_token_ids: set[int] | list[int], start_after: int | None = None) -> None:
        self.matcher = llguidance.LLMatcher(lltok, grammar, log_level=0)
        # Reasoning models whose prompt pre-opens <think>: think freely, constrain the answer
        # that follows the end-of-thinking token ``start_after``.
        self.start_after = start_after
        if self.matcher.is_error():
            detail = self.matcher.get_error().removeprefix("Error: ").strip()
            raise ValidationError(f"invalid schema or grammar: {detail}")
        self.eos_token_ids = sorted(eos_token_ids) or [lltok.eos_token]
        self.vocab_size = lltok.vocab_size
        self._words = np.zeros((self.vocab_size + 31) // 32, dtype=np.int32)
        self.seen = NewTokens()    # generated tokens fed to the matcher
        self.error: str | None = None

    # -- state
    @property
    def accepting(self) -> bool:
        return self.matcher.is_accepting()

    @property
    def stopped(self) -> bool:
        return self.matcher.is_stopped()

    @property
    def consumed(self) -> int:
        return self.seen.consumed

    def _advance(self, tokens: mx.array) -> None:
        new = self.seen.take(tokens)
        if not new or self.error is not None:
            return
        if self.start_after is not None:
            if self.start_after not in new:
                return
            new = new[new.index(self.start_after) + 1:]
            self.start_after = None
        for tok in new:
            if tok in self.eos_token_ids and self.matcher.is_accepting():
                self.matcher.consume_token(tok)
                continue
            if not self.matcher.consume_token(tok):
                self.error = self.matcher.get_error() or f"token {tok} rejected"
                return

    def allowed(self, width: int) -> np.ndarray:
        """Boolean mask over ``width`` logits for the matcher's current state."""
        if self.error is not None or self.matcher.is_error():
            mask = np.zeros(width, dtype=np.bool_)
            mask[[t for t in self.eos_token_ids if t < width]] = True
            return mask
        self.matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little")
        if bits.shape[0] >= width:
            mask = bits[:width].astype(np.bool_)
        else:
            mask = np.zeros(width, dtype=np.bool_)
            mask[: bits.shape[0]] = bits
        if self.matcher.is_stopped() or not mask.any():
            # Grammar finished (or dead end): only end-of-turn may follow.
            mask[:] = False
            mask[[t for t in self.eos_token_ids if t < width]] = True
        return mask

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        self._advance(tokens)
        if self.start_after is not None:   # still thinking: unconstrained
            return logits
        mask = mx.array(self.allowed(int(logits.shape[-1])))
        return mx.where(mask, logits, mx.array(-float("inf"), dtype=logits.dtype))


def make_processor(lltok: llguidance.LLTokenizer, grammar: str,
                   eos_token_ids: set[int] | list[int],
                   start_after: int | None = None) -> GrammarLogitsProcessor:
    """A processor for ``grammar``; ValidationError naming the problem when it is invalid."""
    return GrammarLogitsProcessor(lltok, grammar, eos_token_ids, start_after)


def think_end_token(lm: LoadedModel) -> int | None:
    """The single token id of ``</think>`` for a ``think`` reasoning model, else None."""
    if lm.reasoning_format != "think":
        return None
    try:
        ids = lm.tokenizer.encode("</think>", add_special_tokens=False)
    except Exception:
        return None
    return int(ids[0]) if len(ids) == 1 else None


def processor_for_model(lm: LoadedModel, grammar: str,
                        start_after: int | None = None) -> GrammarLogitsProcessor:
    """A fresh processor for a loaded model (``LoadedModel``-like: tokenizer, eos ids, config).

    ``start_after``: leave the output unconstrained until this token (``</think>``) appears.
    """
    eos = set(lm.eos_token_ids or [])
    config = lm.config or {}
    n_vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    lltok = ll_tokenizer(lm.tokenizer, eos or None, n_vocab)
    return make_processor(lltok, grammar, eos or set(lltok.eos_tokens), start_after)
