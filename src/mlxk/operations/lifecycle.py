"""``ps``, ``load``, ``stop``: talk to a running ``mlxk serve`` over its admin API (``/mlxk/*``).

Uses only the standard library's HTTP client, so ``ps`` stays as light as ``list``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mlxk import config
from mlxk.errors import ServerError, ServerUnreachable, ValidationError

TIMEOUT_S = 10.0
LOAD_TIMEOUT_S = 600.0   # loading a large model can take minutes


def server_url(url: str | None) -> str:
    """``--server URL``, else ``MLXK_SERVER``, else ``http://127.0.0.1:8000``."""
    chosen = (url or config.server_url()).rstrip("/")
    if "://" not in chosen:
        chosen = "http://" + chosen
    if not chosen.startswith(("http://", "https://")):
        raise ValidationError(f"--server must be an http(s) URL, got '{chosen}'")
    return chosen


def _call(method: str, url: str, path: str, api_key: str | None, body: dict[str, Any] | None = None,
          timeout: float = TIMEOUT_S) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    key = api_key or config.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _server_error(exc, url) from exc
    except OSError as exc:  # URLError, refused, timeouts
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            raise ServerError(f"{url} did not answer {path} within {timeout:g} s", "timeout",
                              url=url) from exc
        raise ServerUnreachable(f"no mlxk server answers at {url} ({reason}); start one with "
                                f"'mlxk serve' or point --server / MLXK_SERVER at it", url=url) from exc
    except json.JSONDecodeError as exc:
        raise ServerError(f"{url} answered with something that is not JSON: is it an mlxk server?",
                          url=url) from exc


def _server_error(exc: urllib.error.HTTPError, url: str) -> ServerError:
    try:
        err = json.loads(exc.read() or b"{}").get("error") or {}
    except (json.JSONDecodeError, AttributeError, OSError):
        err = {}
    message = err.get("message") if isinstance(err, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    if exc.code == 404 and code == "not_found":
        message = f"{url} has no admin API (an mlxk serve older than 'ps', or another server)"
    return ServerError(f"{url}: {message or f'HTTP {exc.code}'}", code if isinstance(code, str) else None,
                       url=url, status=exc.code)


def list_loaded(url: str | None = None, api_key: str | None = None) -> dict[str, Any]:
    """The ``ps`` data object: ``{"server": url, "models": [...]}``."""
    base = server_url(url)
    return {"server": base, **_call("GET", base, "/mlxk/ps", api_key)}


def load_model(model: str, keep_alive: float | None = None, url: str | None = None,
               api_key: str | None = None) -> dict[str, Any]:
    """Ask the server to load ``model`` now; returns ``{"server", "model": <ps row>}``."""
    base = server_url(url)
    body: dict[str, Any] = {"model": model}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    row = _call("POST", base, "/mlxk/load", api_key, body, timeout=LOAD_TIMEOUT_S)
    return {"server": base, "model": row}


def stop_models(model: str | None, all_models: bool = False, force: bool = False, url: str | None = None,
                api_key: str | None = None) -> dict[str, Any]:
    """Unload ``model`` (or every model); returns ``{"server", "stopped": [names]}``."""
    if all_models == (model is not None):
        raise ValidationError("name a model or pass --all")
    base = server_url(url)
    body: dict[str, Any] = {"all": True} if all_models else {"model": model}
    body["force"] = force
    return {"server": base, **_call("POST", base, "/mlxk/stop", api_key, body, timeout=LOAD_TIMEOUT_S)}
