"""The one error tree of mlxk.

Every error carries a stable ``code`` (the JSON ``error.type``), an HTTP status
for the server, and structured extras that go into the JSON error object::

    MlxkError (InternalError)
     ├── ValidationError (ValueError)            bad model name, bad argument value
     ├── UsageError                              "CommandError": bad flags (exit 2)
     ├── ModelNotFound (LookupError)             model_not_found
     ├── AmbiguousMatch (LookupError)            ambiguous_match  (+matches)
     ├── HashNotFound (LookupError)              hash_not_found   (+available_hashes)
     ├── AccessDenied (PermissionError)          access_denied
     ├── DownloadFailed                          download_failed
     ├── RequiresConfirmation                    requires_confirmation
     ├── LocksPresent                            locks_present
     ├── PermissionDenied (PermissionError)      permission_denied
     ├── DeletionFailed                          deletion_failed
     ├── ExecutionError                          execution_error
     ├── NotRuntimeCompatible                    not_runtime_compatible
     ├── FeatureDisabled                         feature_disabled
     ├── Unauthorized                            authentication_error (server)
     ├── PayloadTooLarge                         request_too_large (server)
     ├── ServerBusy                              server_busy (server, 503)
     ├── OfflineError                            offline
     ├── ServerUnreachable                       server_unreachable (+url): ps/load/stop found no server
     └── ServerError                             the server's own error code (+url, status)

Foreign exceptions are translated where the foreign library is called
(``hub/`` for huggingface_hub, ``engine/`` for mlx), with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class MlxkError(Exception):
    """Base of every error mlxk reports on purpose."""

    code = "InternalError"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``error`` object: ``{"type", "message", ...extra}``."""
        return {"type": self.code, "message": self.message, **self.extra}


class InternalError(MlxkError):
    code = "InternalError"


class ValidationError(MlxkError, ValueError):
    code = "ValidationError"
    http_status = 400


class UsageError(MlxkError):
    code = "CommandError"
    http_status = 400
    exit_code = 2


class ModelNotFound(MlxkError, LookupError):
    code = "model_not_found"
    http_status = 404


class AmbiguousMatch(MlxkError, LookupError):
    code = "ambiguous_match"
    http_status = 400

    def __init__(self, message: str, matches: list[str], **extra: Any) -> None:
        super().__init__(message, matches=sorted(matches), **extra)


class HashNotFound(MlxkError, LookupError):
    code = "hash_not_found"
    http_status = 404

    def __init__(self, message: str, available_hashes: list[str], **extra: Any) -> None:
        super().__init__(message, available_hashes=available_hashes, **extra)


class AccessDenied(MlxkError, PermissionError):
    code = "access_denied"
    http_status = 403


class DownloadFailed(MlxkError):
    code = "download_failed"
    http_status = 502


class RequiresConfirmation(MlxkError):
    code = "requires_confirmation"
    http_status = 409


class LocksPresent(MlxkError):
    code = "locks_present"
    http_status = 409


class PermissionDenied(MlxkError, PermissionError):
    code = "permission_denied"
    http_status = 403


class DeletionFailed(MlxkError):
    code = "deletion_failed"


class ExecutionError(MlxkError):
    code = "execution_error"


class NotRuntimeCompatible(MlxkError):
    code = "not_runtime_compatible"
    http_status = 400


class FeatureDisabled(MlxkError):
    code = "feature_disabled"
    http_status = 403


class Unauthorized(MlxkError):
    code = "authentication_error"
    http_status = 401


class PayloadTooLarge(MlxkError):
    code = "request_too_large"
    http_status = 413


class ServerBusy(MlxkError):
    code = "server_busy"
    http_status = 503


class OfflineError(MlxkError):
    code = "offline"
    http_status = 503


class ServerUnreachable(MlxkError):
    code = "server_unreachable"
    http_status = 503


class ServerError(MlxkError):
    """An error a running ``mlxk serve`` answered with; ``code`` is the server's own error code."""

    code = "server_error"
    http_status = 502

    def __init__(self, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        if code:
            self.code = code
