"""The one mapping from errors to OpenAI-shaped error bodies: ``{"error": {message, type, param, code}}``.

Every failure the server reports goes through ``error_body``/``error_response``:
mlxk errors, request validation (malformed JSON and wrong types are 400, not 422),
routing errors (404/405) and anything unexpected (500, no traceback unless
``MLXK_DEBUG=1``).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlxk import config
from mlxk.errors import MlxkError, ServerBusy
from mlxk.server.dialects import shape_error

log = logging.getLogger("mlxk.server")

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
RETRY_AFTER_SECONDS = 1


def openai_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, code: str | None = None,
               param: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": openai_type(status), "param": param, "code": code}
    err.update({k: v for k, v in extra.items() if k not in err})
    return {"error": err}


def mlxk_error_body(exc: MlxkError) -> tuple[int, dict[str, Any]]:
    extra = dict(exc.extra)
    param = extra.pop("param", None)
    code = extra.pop("code", exc.code)
    return exc.http_status, error_body(exc.http_status, exc.message, code, param, **extra)


def error_response(exc: MlxkError, path: str = "") -> JSONResponse:
    status, body = mlxk_error_body(exc)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, ServerBusy) else None
    return JSONResponse(shape_error(path, status, body), status_code=status, headers=headers)


def _json(request: Request, body: dict[str, Any], status: int, headers: Any = None) -> JSONResponse:
    """An error answer in the shape of the dialect the request's path speaks."""
    return JSONResponse(shape_error(request.url.path, status, body), status_code=status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}", None
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    return (f"{param}: {msg}" if param else msg), param


def internal_error_body(exc: BaseException) -> dict[str, Any]:
    message = f"internal error: {type(exc).__name__}: {exc}"
    if config.debug():
        message += "\n" + "".join(traceback.format_exception(exc))
    return error_body(500, message, "InternalError")


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(MlxkError)
    async def _mlxk(request: Request, exc: MlxkError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _json(request, error_body(400, message, "invalid_request", param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return _json(request, error_body(exc.status_code, str(exc.detail), code), exc.status_code,
                     getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _json(request, internal_error_body(exc), 500)
