"""huggingface_hub / transport exceptions -> the ``mlxk.errors`` a user can act on."""

from __future__ import annotations

from mlxk import config
from mlxk.errors import (
    AccessDenied,
    DownloadFailed,
    ExecutionError,
    HashNotFound,
    MlxkError,
    ModelNotFound,
    OfflineError,
    PermissionDenied,
    ValidationError,
)


def model_page(repo_id: str) -> str:
    return f"{config.hf_endpoint()}/{repo_id}"


def translate(exc: BaseException, repo_id: str, revision: str | None = None) -> MlxkError:
    """huggingface_hub / httpx exception -> the mlxk error a user can act on."""
    from huggingface_hub import errors as hf

    page = model_page(repo_id)
    if isinstance(exc, hf.HFValidationError):
        return ValidationError(f"Invalid Hub repo id '{repo_id}': {first_line(exc)}")
    if isinstance(exc, hf.GatedRepoError):
        hint = ("your HF_TOKEN has no access: request it on the model page"
                if config.hf_token() else "set HF_TOKEN to a token of an account that accepted its terms")
        return AccessDenied(f"{repo_id} is a gated model: {hint} ({page}).",
                            model=repo_id, url=page)
    if isinstance(exc, hf.RevisionNotFoundError):
        return HashNotFound(f"Revision '{revision}' not found for {repo_id} on the Hub.",
                            available_hashes=[], model=repo_id)
    if isinstance(exc, hf.DisabledRepoError):
        return AccessDenied(f"{repo_id} is disabled on the Hub ({page}).", model=repo_id, url=page)
    if isinstance(exc, hf.RepositoryNotFoundError):
        if config.hf_token():
            return ModelNotFound(f"{repo_id} not found on the Hub ({config.hf_endpoint()}), "
                                 "or your HF_TOKEN cannot see it.", model=repo_id)
        return ModelNotFound(f"{repo_id} not found on the Hub ({config.hf_endpoint()}). If it is "
                             "private, set HF_TOKEN to a token that can read it.", model=repo_id)
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return OfflineError("HF_HUB_OFFLINE is set: cannot reach the Hub.")
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return AccessDenied(f"Access to {repo_id} denied by the Hub (HTTP {status}); "
                                f"check HF_TOKEN ({page}).", model=repo_id, url=page)
        return DownloadFailed(f"Hub error for {repo_id}: {first_line(exc)}", model=repo_id)
    if _is_connection_error(exc):
        return DownloadFailed(f"Cannot reach the Hub at {config.hf_endpoint()} ({first_line(exc)}); "
                              "check the network or HF_ENDPOINT.", model=repo_id)
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"Cannot write to the cache for {repo_id}: {first_line(exc)}",
                                model=repo_id)
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return DownloadFailed(f"No space left on device while downloading {repo_id}.", model=repo_id)
    return DownloadFailed(f"Download of {repo_id} failed: {type(exc).__name__}: {first_line(exc)}",
                          model=repo_id)


def translate_listing(exc: BaseException) -> MlxkError:
    """An error of a Hub-wide query (search), which concerns no one repo."""
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.OfflineModeIsEnabled):
        return OfflineError("HF_HUB_OFFLINE is set: cannot reach the Hub.")
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return AccessDenied(f"The Hub refused the search (HTTP {status}); check HF_TOKEN.")
        return ExecutionError(f"Hub search failed: {first_line(exc)}")
    if _is_connection_error(exc):
        return ExecutionError(f"Cannot reach the Hub at {config.hf_endpoint()} ({first_line(exc)}); "
                              "check the network or HF_ENDPOINT.")
    return ExecutionError(f"Hub search failed: {type(exc).__name__}: {first_line(exc)}")


def _is_connection_error(exc: BaseException) -> bool:
    kinds: tuple[type[BaseException], ...] = ()
    for mod in ("httpx2", "httpx"):  # huggingface_hub 2.x uses httpx2, 1.x httpx
        try:
            http = __import__(mod)
            kinds += (http.ConnectError, http.TimeoutException)
        except ImportError:
            continue
    seen: BaseException | None = exc
    while seen is not None:  # huggingface_hub wraps the transport error (LocalEntryNotFoundError)
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
