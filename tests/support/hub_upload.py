"""Upload side of the fake Hub: whoami, repo creation, preupload, LFS batch/upload/verify, commits.

A mixin of ``hub_handler.Handler``; it uses the handler's request state (``hub``,
``headers``, ``body``) and helpers (``_send_json``, ``_error``, ``_writer``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import unquote

from tests.support.hub_server import LFS_SUFFIXES, LFS_THRESHOLD, USER, HubRepo


class UploadRoutes:
    hub: Any
    headers: Any
    body: bytes
    _send_json: Any
    _error: Any
    _writer: Any

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
