"""A local fake HuggingFace Hub on 127.0.0.1 for tests and benchmarks.

It implements the endpoints huggingface_hub (2.x) uses to download and upload
model repos, with the same status codes and headers the real Hub sends:

- ``GET /api/models/{repo}[/revision/{rev}]``  model info (sha, siblings, gated, private)
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``  tree listing (recursive, lfs, paginated)
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``  file with ETag / X-Linked-Etag / X-Linked-Size /
  X-Repo-Commit / Content-Length, Range requests (206)
- ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/models/{repo}/preupload/{rev}``,
  ``POST /{repo}.git/info/lfs/objects/batch`` (+ PUT upload, POST verify),
  ``POST /api/models/{repo}/commit/{rev}`` (NDJSON)

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo)
exactly where huggingface_hub looks for them. Test knobs: gated/private repos with
allowed tokens, a bandwidth throttle, dropping a connection at a byte offset, and
per-file byte counters (``bytes_served``) so a test can prove a resume fetched only
the missing bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".npz", ".pt", ".pth", ".onnx", ".h5",
                ".msgpack", ".model", ".tiktoken", ".zip", ".tar", ".gz")
LFS_THRESHOLD = 10 * 1024 * 1024
DEFAULT_TOKEN = "hf_mlxk_test_write_token"
USER = "mlxk-tester"
CHUNK = 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class HubFile:
    path: str
    data: bytes
    lfs: bool
    size: int = 0
    sha256: str = ""
    blob_id: str = ""  # git oid of what git stores (the pointer for LFS files)
    pointer_size: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.data)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        if self.lfs:
            pointer = lfs_pointer(self.sha256, self.size)
            self.blob_id = git_blob_sha1(pointer)
            self.pointer_size = len(pointer)
        else:
            self.blob_id = git_blob_sha1(self.data)

    @property
    def etag(self) -> str:
        """What huggingface_hub names the blob by: sha256 for LFS files, git sha1 otherwise."""
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Commit:
    sha: str
    files: dict[str, HubFile]
    message: str
    date: str
    parent: str | None = None


@dataclass
class HubRepo:
    repo_id: str
    private: bool = False
    gated: bool | str = False
    allowed_tokens: set[str] = field(default_factory=set)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    size_override: dict[str, int] = field(default_factory=dict)  # advertised sizes (model info only)


def is_lfs(path: str, data: bytes) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or len(data) >= LFS_THRESHOLD or b"\0" in data[:512]


class FakeHub:
    """State + knobs. Thread-safe enough for a test: one lock around mutations."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.token = DEFAULT_TOKEN  # the write token this Hub accepts
        self.tokens: set[str] = {DEFAULT_TOKEN}
        self.lock = threading.Lock()
        self.throttle_bps: float | None = None  # bytes/s for resolve GETs (None = unlimited)
        self.throttle_paths: set[str] | None = None  # limit the throttle to these file paths
        self.drops: dict[str, tuple[int, int | None]] = {}  # path -> (byte offset, times left|None)
        self.page_size = 1000
        self.short_revisions = True  # resolve commit prefixes in URLs (False: full sha or ref only)
        self.failures: dict[str, tuple[int, str | None]] = {}  # route -> (status, X-Error-Code)
        self.bytes_served: dict[str, int] = {}  # "repo/path" -> body bytes sent
        self.requests: list[dict] = []  # method, path, range_start, status
        self.active_transfers = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- repo building ------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes | str | Path] | None = None, *,
                 private: bool = False, gated: bool | str = False,
                 allowed_tokens: set[str] | None = None, message: str = "initial commit",
                 branch: str = "main") -> str:
        """Create ``repo_id`` (if needed) and commit ``files`` to ``branch``; return the commit sha."""
        with self.lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                repo = HubRepo(repo_id, private=private, gated=gated,
                               allowed_tokens=set(allowed_tokens or ()))
                self.repos[repo_id] = repo
        if files is None:
            return ""
        return self.commit(repo_id, files, message=message, branch=branch, replace=True)

    def add_repo_from_dir(self, repo_id: str, folder: Path, **kw: object) -> str:
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files, **kw)  # type: ignore[arg-type]

    def commit(self, repo_id: str, files: dict[str, bytes | str | Path], *, message: str = "update",
               branch: str = "main", replace: bool = False, deletes: tuple[str, ...] = ()) -> str:
        """A new commit on ``branch``: ``files`` added/changed (``replace``: the whole tree)."""
        built = {}
        for path, content in files.items():
            data = (content.read_bytes() if isinstance(content, Path)
                    else content.encode() if isinstance(content, str) else bytes(content))
            built[path] = HubFile(path, data, is_lfs(path, data))
        with self.lock:
            repo = self.repos[repo_id]
            parent = repo.refs.get(branch)
            tree = {} if replace or parent is None else dict(repo.commits[parent].files)
            for d in deletes:
                for p in [p for p in tree if p == d or p.startswith(d.rstrip("/") + "/")]:
                    del tree[p]
            tree.update(built)
            seed = json.dumps([repo_id, parent, message, time.time_ns(),
                               sorted((p, f.blob_id) for p, f in tree.items())])
            sha = hashlib.sha1(seed.encode()).hexdigest()
            date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            repo.commits[sha] = Commit(sha, tree, message, date, parent)
            repo.refs[branch] = sha
            return sha

    def set_access(self, repo_id: str, *, private: bool | None = None, gated: bool | str | None = None,
                   allowed_tokens: set[str] | None = None) -> None:
        repo = self.repos[repo_id]
        if private is not None:
            repo.private = private
        if gated is not None:
            repo.gated = gated
        if allowed_tokens is not None:
            repo.allowed_tokens = set(allowed_tokens)

    # ---- knobs --------------------------------------------------------------------------
    def throttle(self, bytes_per_second: float | None, paths: set[str] | None = None) -> None:
        self.throttle_bps = bytes_per_second
        self.throttle_paths = paths

    def fail(self, route: str, status: int, error_code: str | None = None) -> None:
        """Answer every request of ``route`` (model_info, tree, resolve, commit...) with an error."""
        self.failures[route] = (status, error_code)

    def drop_connection(self, path: str, at_byte: int, times: int | None = None) -> None:
        """Close the connection when a GET of ``path`` reaches absolute offset ``at_byte``."""
        self.drops[path] = (at_byte, times)

    def clear_drops(self) -> None:
        self.drops.clear()

    def served(self, repo_id: str, path: str) -> int:
        return self.bytes_served.get(f"{repo_id}/{path}", 0)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no file body is being sent (e.g. after the client was killed)."""
        deadline = time.monotonic() + timeout
        while self.active_transfers and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.active_transfers:
            raise TimeoutError("fake hub still sending")

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_served.clear()
            self.requests.clear()

    def head_sha(self, repo_id: str, branch: str = "main") -> str:
        return self.repos[repo_id].refs[branch]

    def files_at(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        sha = repo.refs.get(rev, rev)
        return {p: f.data for p, f in repo.commits[sha].files.items()}

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeHub:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="fake-hub")
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Abort(Exception):
    """Raised to close the connection without a response (simulated network drop)."""


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("GET", re.compile(rf"^/api/models/{_REPO}/revision/(?P<rev>[^/]+)$"), "model_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(rf"^/api/models/{_REPO}$"), "model_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/commits/(?P<rev>[^/]+)$"), "commits"),
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(rf"^/{_REPO}\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("PUT", re.compile(r"^/_lfs/upload/(?P<oid>[0-9a-f]{64})$"), "lfs_upload"),
    ("POST", re.compile(r"^/_lfs/verify/(?P<oid>[0-9a-f]{64})$"), "lfs_verify"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # ---- plumbing ------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.body = self.rfile.read(length)
        for m, rx, name in _ROUTES:
            match = rx.match(path)
            if m == method and match:
                failure = self.hub.failures.get(name)
                if failure is not None:
                    self._error(failure[0], failure[1], f"injected failure of {name}")
                    return
                try:
                    getattr(self, "h_" + name)(**{k: v for k, v in match.groupdict().items()})
                except _Abort:
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
        if path.startswith("/api/models/"):  # e.g. a bare legacy name: the Hub says "not found"
            self._error(401 if self._token() is None else 404, "RepoNotFound", "Repository not found")
            return
        self._send_json(404, {"error": "Not Found"}, error_code=None)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _send_json(self, status: int, obj: object, *, error_code: str | None = None,
                   headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
            if isinstance(obj, dict) and "error" in obj:
                self.send_header("X-Error-Message", str(obj["error"]))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str,
               headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": message}, error_code=code, headers=headers)

    # ---- access -------------------------------------------------------------------------
    def _repo(self, repo_id: str, *, files: bool = False) -> HubRepo | None:
        """The repo if this request may see it; otherwise the Hub's error is sent and None returned.

        Missing and private-without-access repos look identical, as on the real Hub:
        401 without a token, 404 with one. Gated repos are visible, but their files need
        an allowed token (``files=True``): 401 anonymous, 403 with a token lacking access.
        """
        token = self._token()
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and token not in repo.allowed_tokens):
            status = 404 if token else 401
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        if files and repo.gated and token not in repo.allowed_tokens:
            status = 401 if token is None else 403
            self._error(status, "GatedRepo",
                        f"Access to model {repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in.")
            return None
        return repo

    def _commit(self, repo: HubRepo, rev: str) -> Commit | None:
        rev = unquote(rev)
        sha = repo.refs.get(rev)
        if sha is None and rev in repo.commits:
            sha = rev
        if sha is None and self.hub.short_revisions and re.fullmatch(r"[0-9a-f]{4,40}", rev):
            hits = [c for c in repo.commits if c.startswith(rev)]
            sha = hits[0] if len(hits) == 1 else None
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo.commits[sha]

    def _writer(self) -> bool:
        if self._token() not in self.hub.tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
            return False
        return True

    # ---- read API ----------------------------------------------------------------------
    def h_model_info(self, repo: str, rev: str = "main") -> None:
        r = self._repo(repo)
        if r is None:
            return
        c = self._commit(r, rev)
        if c is None:
            return
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path in sorted(c.files):
            f = c.files[path]
            entry: dict = {"rfilename": path}
            if blobs:
                size = r.size_override.get(path, f.size)
                entry.update(size=size, blobId=f.blob_id)
                if f.lfs:
                    entry["lfs"] = {"sha256": f.sha256, "size": size, "pointerSize": f.pointer_size}
            siblings.append(entry)
        org = repo.split("/")[0]
        self._send_json(200, {
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo,
            "author": org, "sha": c.sha, "lastModified": c.date, "createdAt": c.date,
            "private": r.private, "gated": r.gated, "disabled": False, "downloads": 0, "likes": 0,
            "tags": ["mlx"] if org == "mlx-community" else [], "library_name": "mlx",
            "siblings": siblings, "usedStorage": sum(f.size for f in c.files.values()),
        })

    def h_commits(self, repo: str, rev: str) -> None:
        r = self._repo(repo)
        if r is None:
            return
        c = self._commit(r, rev)
        if c is None:
            return
        out = []
        while c is not None:
            out.append({"id": c.sha, "authors": [{"user": USER}], "date": c.date,
                        "title": c.message, "message": c.message})
            c = r.commits.get(c.parent) if c.parent else None
        self._send_json(200, out)

    def h_tree(self, repo: str, rev: str, path: str | None = None) -> None:
        r = self._repo(repo)
        if r is None:
            return
        c = self._commit(r, rev)
        if c is None:
            return
        prefix = (path or "").strip("/")
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        entries: dict[str, dict] = {}
        for fpath in sorted(c.files):
            if prefix and not fpath.startswith(prefix + "/"):
                continue
            rel = fpath[len(prefix) + 1:] if prefix else fpath
            parts = rel.split("/")
            for i in range(1, len(parts)):  # folders
                if not recursive and i > 1:
                    break
                folder = "/".join(([prefix] if prefix else []) + parts[:i])
                entries.setdefault(folder, {"type": "directory", "path": folder, "size": 0,
                                            "oid": hashlib.sha1(folder.encode()).hexdigest()})
            if not recursive and len(parts) > 1:
                continue
            f = c.files[fpath]
            e = {"type": "file", "path": fpath, "size": f.size, "oid": f.blob_id}
            if f.lfs:
                e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            entries[fpath] = e
        if prefix and not entries:
            self._error(404, "EntryNotFound", f"{prefix} does not exist on \"{rev}\"")
            return
        items = [entries[k] for k in sorted(entries)]
        start = int(self.query.get("cursor", "0") or 0)
        page = items[start:start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(items):
            q = f"recursive={'true' if recursive else 'false'}&cursor={start + self.hub.page_size}"
            base = f"http://{self.headers.get('Host')}" + urlsplit(self.path).path
            headers["Link"] = f'<{base}?{q}>; rel="next"'
        self._send_json(200, page, headers=headers)

    def h_resolve(self, repo: str, rev: str, path: str) -> None:
        r = self._repo(repo, files=True)
        if r is None:
            return
        c = self._commit(r, rev)
        if c is None:
            return
        f = c.files.get(path)
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", headers={"X-Repo-Commit": c.sha})
            return
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m is None:
                self._error(416, None, "Bad range")
                return
            if m.group(1):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else f.size - 1
            else:  # suffix range
                start = max(0, f.size - int(m.group(2)))
            end = min(end, f.size - 1)
            if start > end and f.size > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{f.blob_id}"')
        self.send_header("X-Repo-Commit", c.sha)
        if f.lfs:
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(f.size))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{f.size}")
        self.end_headers()
        with self.hub.lock:
            self.hub.requests.append({"method": self.command, "path": path, "repo": repo,
                                      "start": start, "status": status})
        if self.command == "HEAD":
            return
        with self.hub.lock:
            self.hub.active_transfers += 1
        try:
            self._stream(repo, f, start, end + 1)
        finally:
            with self.hub.lock:
                self.hub.active_transfers -= 1

    def _stream(self, repo: str, f: HubFile, start: int, stop: int) -> None:
        hub = self.hub
        key = f"{repo}/{f.path}"
        drop = hub.drops.get(f.path)
        drop_at = None
        if drop is not None and start <= drop[0] < stop and (drop[1] is None or drop[1] > 0):
            drop_at = drop[0]
            with hub.lock:
                if drop[1] is not None:
                    hub.drops[f.path] = (drop[0], drop[1] - 1)
        bps = hub.throttle_bps
        if bps and hub.throttle_paths is not None and f.path not in hub.throttle_paths:
            bps = None
        chunk = CHUNK if not bps else max(1024, min(CHUNK, int(bps / 20)))
        view = memoryview(f.data)
        pos = start
        t0 = time.monotonic()
        while pos < stop:
            n = min(chunk, stop - pos)
            if drop_at is not None and pos + n > drop_at:
                n = drop_at - pos
            if n > 0:
                self.wfile.write(view[pos:pos + n])
                with hub.lock:
                    hub.bytes_served[key] = hub.bytes_served.get(key, 0) + n
                pos += n
            if drop_at is not None and pos >= drop_at:
                self.wfile.flush()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise _Abort()
            if bps:
                ahead = (pos - start) / bps - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    # ---- write API ---------------------------------------------------------------------
    def h_whoami(self) -> None:
        if not self._writer():
            return
        self._send_json(200, {"type": "user", "id": "0" * 24, "name": USER, "fullname": "mlxk tester",
                              "orgs": [], "auth": {"type": "access_token",
                                                   "accessToken": {"displayName": "test", "role": "write"}}})

    def h_validate_yaml(self) -> None:
        self._send_json(200, {"errors": [], "warnings": []})

    def h_create_repo(self) -> None:
        if not self._writer():
            return
        payload = json.loads(self.body or b"{}")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"http://{self.headers.get('Host')}/{repo_id}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self.hub.lock:
            if repo_id in self.hub.repos:
                self._send_json(409, {"error": "You already created this model repo", "url": url})
                return
            repo = HubRepo(repo_id, private=private, allowed_tokens=set(self.hub.tokens))
            self.hub.repos[repo_id] = repo
        # A new repo on the Hub has one commit with a .gitattributes file.
        self.hub.commit(repo_id, {".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                        message="initial commit", replace=True)
        self._send_json(200, {"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()})

    def _writable_repo(self, repo: str) -> HubRepo | None:
        if not self._writer():
            return None
        r = self.hub.repos.get(repo)
        if r is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return r

    def h_preupload(self, repo: str, rev: str) -> None:
        r = self._writable_repo(repo)
        if r is None:
            return
        head = r.commits.get(r.refs.get(unquote(rev), ""))
        out = []
        for item in json.loads(self.body).get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["path"].lower().endswith(LFS_SUFFIXES) or item["size"] >= LFS_THRESHOLD \
                or b"\0" in sample
            existing = head.files.get(item["path"]) if head else None
            out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False, "oid": existing.blob_id if existing else None})
        self._send_json(200, {"files": out, "commitOid": head.sha if head else None})

    def h_lfs_batch(self, repo: str) -> None:
        if self._writable_repo(repo) is None:
            return
        payload = json.loads(self.body)
        base = f"http://{self.headers.get('Host')}"
        objects = []
        for obj in payload.get("objects", []):
            entry: dict = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_store:
                entry["actions"] = {
                    "upload": {"href": f"{base}/_lfs/upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{base}/_lfs/verify/{obj['oid']}", "header": {}},
                }
            objects.append(entry)
        self._send_json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def h_lfs_upload(self, oid: str) -> None:
        if hashlib.sha256(self.body).hexdigest() != oid:
            self._error(400, None, "sha256 mismatch")
            return
        with self.hub.lock:
            self.hub.lfs_store[oid] = self.body
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.send_header("ETag", f'"{oid[:32]}"')
        self.end_headers()

    def h_lfs_verify(self, oid: str) -> None:
        ok = oid in self.hub.lfs_store
        self._send_json(200 if ok else 404, {"message": "ok" if ok else "missing"})

    def h_commit(self, repo: str, rev: str) -> None:
        r = self._writable_repo(repo)
        if r is None:
            return
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        files: dict[str, bytes] = {}
        deletes: list[str] = []
        message = "commit"
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary") or message
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.hub.lfs_store.get(value["oid"])
                if data is None:
                    self._error(400, None, f"LFS object {value['oid']} was not uploaded")
                    return
                files[value["path"]] = data
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(value["path"])
        sha = self.hub.commit(repo, files, message=message, branch=unquote(rev), deletes=tuple(deletes))
        base = f"http://{self.headers.get('Host')}"
        self._send_json(200, {"success": True, "commitOid": sha, "commitUrl": f"{base}/{repo}/commit/{sha}",
                              "hookOutput": "", "pullRequestUrl": None})


class HubProcess:
    """The fake Hub in its own process (``main`` below), for tests that kill the server itself."""

    def __init__(self, root: Path, port: int = 0, throttle: float | None = None) -> None:
        import subprocess
        import sys

        argv = [sys.executable, "-m", "tests.support.hub_server", str(root), "--port", str(port)]
        if throttle:
            argv += ["--throttle", str(throttle)]
        repo_root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(argv, cwd=repo_root, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("fake hub process did not start")
        self.port = int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.support.hub_server ROOT``: serve every ``ROOT/org/name`` folder as a repo.

    For a Hub in its own process (a test that must kill or restart it, or manual trials):
    prints the base URL on the first line, then serves until killed.
    """
    import argparse

    ap = argparse.ArgumentParser(description="local fake HuggingFace Hub")
    ap.add_argument("root", type=Path, help="folder with <org>/<name>/ repo folders")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--throttle", type=float, default=None, help="bytes/s for file downloads")
    args = ap.parse_args(argv)
    hub = FakeHub()
    for org in sorted(p for p in args.root.iterdir() if p.is_dir()):
        for repo in sorted(p for p in org.iterdir() if p.is_dir()):
            hub.add_repo_from_dir(f"{org.name}/{repo.name}", repo)
    hub.throttle(args.throttle)
    hub.start(args.port)
    print(hub.url, flush=True)
    try:
        assert hub.thread is not None
        hub.thread.join()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
