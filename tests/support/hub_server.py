"""A local fake HuggingFace Hub on 127.0.0.1 for tests and benchmarks.

It implements the endpoints huggingface_hub (2.x) uses to download and upload
model repos, with the same status codes and headers the real Hub sends:

- ``GET /api/models?search=&filter=&sort=&limit=``  the model index (``list_models``): id contains
  ``search``, every ``filter`` is the library or a tag, sorted highest first
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

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

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
    downloads: int = 0
    likes: int = 0
    library: str | None = None  # None: ``library_name`` of the README front matter
    tags: list[str] | None = None  # None: the README front matter's tags


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
        self.omit_blob_ids = False  # model info without blobId (as some mirrors and proxies send it)
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

    def set_listing(self, repo_id: str, **fields: int | str | list[str]) -> None:
        """What the model index (``/api/models``) says: ``downloads``, ``likes``, ``library``, ``tags``."""
        repo = self.repos[repo_id]
        for name, value in fields.items():
            if name not in ("downloads", "likes", "library", "tags"):
                raise TypeError(f"not a listing field: {name}")
            setattr(repo, name, value)

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
        from tests.support.hub_handler import Handler, Server

        handler = type("BoundHandler", (Handler,), {"hub": self})
        self.server = Server(("127.0.0.1", port), handler)
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
