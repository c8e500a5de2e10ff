"""HTTP side of the fake Hub (``hub_server.FakeHub``): routes, access rules, streaming, uploads.

Status codes and headers follow what huggingface_hub reads: ``X-Error-Code`` for
RepoNotFound / RevisionNotFound / EntryNotFound / GatedRepo, ``X-Repo-Commit``,
``ETag`` + ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, 206 for Range requests.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.hub_server import CHUNK, USER, Commit, HubFile, HubRepo
from tests.support.hub_upload import UploadRoutes

if TYPE_CHECKING:
    from tests.support.hub_server import FakeHub


class Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (killed, dropped): expected in these tests
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Abort(Exception):
    """Raised to close the connection without a response (simulated network drop)."""


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("GET", re.compile(r"^/api/models$"), "list_models"),
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


class Handler(UploadRoutes, BaseHTTPRequestHandler):
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
                entry.update(size=size)
                if not self.hub.omit_blob_ids:
                    entry["blobId"] = f.blob_id
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

    def h_list_models(self) -> None:
        """The model index as ``HfApi.list_models`` reads it (one page; ``limit`` caps it)."""
        query = parse_qs(urlsplit(self.path).query)
        needle = query.get("search", [""])[-1].lower()
        filters = query.get("filter", [])
        sort = query.get("sort", ["downloads"])[-1]
        token = self._token()
        items = []
        for repo_id, r in sorted(self.hub.repos.items()):
            head = r.refs.get("main")
            if head is None or (r.private and token not in r.allowed_tokens):
                continue
            library, tags = self._listing_meta(r, r.commits[head])
            if needle not in repo_id.lower() or any(f != library and f not in tags for f in filters):
                continue
            c = r.commits[head]
            items.append({"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id,
                          "modelId": repo_id, "likes": r.likes, "downloads": r.downloads,
                          "private": r.private, "gated": r.gated, "library_name": library,
                          "tags": tags, "lastModified": c.date, "createdAt": c.date})
        key = {"likes": "likes", "lastModified": "lastModified"}.get(sort, "downloads")
        items.sort(key=lambda i: i[key], reverse=True)
        limit = int(query.get("limit", ["1000"])[-1])
        self._send_json(200, items[:limit])

    @staticmethod
    def _listing_meta(repo: HubRepo, commit: Commit) -> tuple[str | None, list[str]]:
        """Library and tags: set on the repo, else from the README front matter (as the Hub does)."""
        card = commit.files.get("README.md")
        front = ""
        if card is not None and card.data.startswith(b"---"):
            front = card.data[3:].split(b"\n---", 1)[0].decode("utf-8", "replace")
        library = repo.library
        if library is None:
            m = re.search(r"^library_name:\s*['\"]?([\w.-]+)", front, re.M)
            library = m.group(1) if m else None
        tags = repo.tags if repo.tags is not None else re.findall(r"^\s*-\s*['\"]?([\w.-]+)", front, re.M)
        inline = re.search(r"^tags:\s*\[([^\]]*)\]", front, re.M)
        if repo.tags is None and inline:
            tags += [t.strip(" '\"") for t in inline.group(1).split(",") if t.strip()]
        if library and library not in tags:
            tags = [*tags, library]
        return library, tags

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
