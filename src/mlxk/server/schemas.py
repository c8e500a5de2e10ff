"""Pydantic models of the OpenAI request/response shapes the server speaks.

Requests are strict: a wrong type is a 400, an unknown top-level field is a 400
(never silently ignored). Fields we accept but cannot honour in a given value
(``best_of > 1``, ``suffix`` ...) are refused in ``features.py``, which
is also the extension point for ``response_format`` and ``tools``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_STOP_STRINGS = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """JSON has one number type: ``1.0`` is an integer to JSON Schema, so it is one here too
        (strict mode would refuse it)."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if isinstance(value, float) and value.is_integer() and _is_int_field(field.annotation):
                data = {**data, name: int(value)}
            elif name == "prompt" and isinstance(value, list):   # token ids: [1.0, 2.0] is [1, 2]
                data = {**data, name: _whole(value)}
        return data


def _is_int_field(annotation: Any) -> bool:
    args = getattr(annotation, "__args__", None) or (annotation,)
    return int in args and float not in args


def _whole(value: Any) -> Any:
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


class StreamOptions(_Strict):
    include_usage: bool = False


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat message. Unknown keys (``refusal``, ``annotations`` ...) are tolerated and dropped."""

    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


# Refusals of features.py written as JSON Schema, so the OpenAPI schema is exactly as strict as
# the server (tests/server/test_serve_schemathesis.py checks that valid input is accepted).
_STREAM_OPTIONS_NEED_STREAM = {
    "if": {"required": ["stream_options"], "properties": {"stream_options": {"type": "object"}}},
    "then": {"required": ["stream"], "properties": {"stream": {"const": True}}}}


class _SamplingFields(_Strict):
    """Fields shared by chat and text completions."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"allOf": [_STREAM_OPTIONS_NEED_STREAM]})

    model: str | None = Field(default=None, max_length=512,
                              description="model id from /v1/models (optional when the server has a --model)")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, json_schema_extra={
        "propertyNames": {"pattern": "^[0-9]+$"},
        "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}})
    seed: int | None = Field(default=None, description="any integer (used modulo 2**64)")
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_STRINGS)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1)
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None


class ChatCompletionRequest(_SamplingFields):
    # top_logprobs needs logprobs: true; tool_choice (other than none) needs tools.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"allOf": [
        _STREAM_OPTIONS_NEED_STREAM,
        {"if": {"required": ["top_logprobs"], "properties": {"top_logprobs": {"type": "integer"}}},
         "then": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}}},
        {"if": {"required": ["tool_choice"], "properties": {"tool_choice": {"not": {"enum": [None, "none"]}}}},
         "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}}},
    ]})
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Extension points (structured-output track): validated in features.py.
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]   # not empty


class CompletionRequest(_SamplingFields):
    prompt: str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)] = Field(
        description="a string, a list of strings, a list of token ids, or a list of lists of token ids")
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool | None = None
    # Only empty: insertion is refused in features.py with its own message; the schema says so too.
    suffix: str | None = Field(default=None, json_schema_extra={"maxLength": 0},
                               description="insertion is not supported: null or empty only")
    best_of: int | None = Field(default=None, ge=1, le=1, description="only 1 (the default) is supported")


# --- responses (documentation of the shapes; handlers build plain dicts for speed) ---

class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    loaded: bool = False
    model_type: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    context_length: int | None = Field(default=None, description="tokens the model attends to at once: "
                                       "its context length, or the --max-kv-size window when smaller")
    max_model_len: int | None = Field(default=None, description="the model's own context length "
                                      "(its config; prompt plus max_tokens must fit it)")
    parent: str | None = Field(default=None, description="a served LoRA adapter: the base model it "
                               "runs on (serve --lora)")
    adapter: str | None = Field(default=None, description="a served LoRA adapter: its name (the "
                                "part after '+' in the id)")
    kv_cache: dict[str, int | None] | None = Field(default=None, description="KV-cache options of "
                                                   "the model (max_kv_size, kv_bits), when set")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok", "starting"]
    ready: bool
    loaded_models: list[str]
    version: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": desc}
    for code, desc in ((400, "invalid request"), (401, "missing or wrong API key"),
                       (404, "unknown model"), (413, "request body too large"),
                       (503, "queue full or model cannot be loaded now"))
}


# --- /v1/embeddings ------------------------------------------------------------------
class EmbeddingRequest(BaseModel):
    # The schema asks for "model" (as OpenAI's does); the server also takes a request without
    # it when it was started with an embedding --model.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"required": ["input", "model"]})

    model: str | None = Field(default=None, min_length=1, max_length=512,
                              description="an embedding model in the cache",
                              json_schema_extra={"anyOf": [{"type": "string", "minLength": 1,
                                                            "maxLength": 512}]})
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="text, list of texts, token array, or list of token arrays")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    truncate: bool = Field(default=False, description="(mlxk) cut inputs longer than the model's limit")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
