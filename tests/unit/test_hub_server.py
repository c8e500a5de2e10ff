"""The fake Hub must satisfy huggingface_hub's own download and upload code unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, constants, scan_cache_dir, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tests.support.hub_server import FakeHub

FILES = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "sub/dir/notes.txt": b"hello",
    "model.safetensors": os.urandom(300_000),
}


def test_snapshot_download_matches_served_files(hub_server: FakeHub, tmp_path: Path) -> None:
    sha = hub_server.add_repo("org/model", FILES)
    cache = tmp_path / "cache"
    path = snapshot_download("org/model", cache_dir=cache, endpoint=hub_server.url)
    assert Path(path).name == sha
    for name, data in FILES.items():
        assert (Path(path) / name).read_bytes() == data
    blob = (Path(path) / "model.safetensors").resolve()
    assert blob.name == hub_server.repos["org/model"].commits[sha].files["model.safetensors"].sha256
    assert (cache / "models--org--model" / "refs" / "main").read_text() == sha
    info = scan_cache_dir(cache)
    assert not info.warnings
    assert hub_server.served("org/model", "model.safetensors") == len(FILES["model.safetensors"])


def test_revision_and_pagination(hub_server: FakeHub, tmp_path: Path) -> None:
    first = hub_server.add_repo("org/model", FILES)
    second = hub_server.commit("org/model", {"config.json": b'{"model_type": "qwen2"}'})
    hub_server.page_size = 2
    api = HfApi(endpoint=hub_server.url)
    names = {f.path for f in api.list_repo_tree("org/model", recursive=True, revision=first)}
    assert {"config.json", "sub", "sub/dir", "sub/dir/notes.txt"} <= names
    assert api.model_info("org/model").sha == second
    assert api.model_info("org/model", revision=first[:7]).sha == first
    path = snapshot_download("org/model", revision=first, cache_dir=tmp_path / "c", endpoint=hub_server.url)
    assert (Path(path) / "config.json").read_bytes() == FILES["config.json"]
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/model", revision="nope")


def test_access_errors(hub_server: FakeHub, tmp_path: Path) -> None:
    hub_server.add_repo("org/gated", FILES, gated="manual", allowed_tokens={"good"})
    hub_server.add_repo("org/private", FILES, private=True, allowed_tokens={"good"})
    api = HfApi(endpoint=hub_server.url)
    assert api.model_info("org/gated").gated == "manual"
    with pytest.raises(GatedRepoError):
        snapshot_download("org/gated", cache_dir=tmp_path / "c", endpoint=hub_server.url, token=False)
    with pytest.raises(GatedRepoError):
        snapshot_download("org/gated", cache_dir=tmp_path / "c", endpoint=hub_server.url, token="bad")
    snapshot_download("org/gated", cache_dir=tmp_path / "ok", endpoint=hub_server.url, token="good")
    for token in (False, "bad"):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("org/private", token=token)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("org/missing", token=token)
    assert api.model_info("org/private", token="good").private is True


def test_range_requests_and_byte_counts(hub_server: FakeHub) -> None:
    hub_server.add_repo("org/model", FILES)
    url = f"{hub_server.url}/org/model/resolve/main/model.safetensors"
    r = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.content == FILES["model.safetensors"][1000:]
    assert r.headers["Content-Range"] == f"bytes 1000-{len(FILES['model.safetensors']) - 1}/300000"
    assert hub_server.served("org/model", "model.safetensors") == 299_000
    head = httpx.head(url)
    assert head.headers["X-Linked-Size"] == "300000"
    assert head.headers["X-Repo-Commit"] == hub_server.head_sha("org/model")


def test_dropped_connection_is_seen_by_the_client(hub_server: FakeHub) -> None:
    hub_server.add_repo("org/model", FILES)
    hub_server.drop_connection("model.safetensors", at_byte=100_000, times=1)
    url = f"{hub_server.url}/org/model/resolve/main/model.safetensors"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).content == FILES["model.safetensors"]  # only dropped once


def test_upload_folder_lands_files(hub_server: FakeHub, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    folder = tmp_path / "up"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    assert api.whoami()["name"]
    url = api.create_repo("org/new", private=True)
    assert url.repo_id == "org/new"
    api.create_repo("org/new", private=True, exist_ok=True)
    info = api.upload_folder(repo_id="org/new", folder_path=folder)
    assert hub_server.head_sha("org/new") == info.oid
    files = hub_server.files_at("org/new")
    for name, data in FILES.items():
        assert files[name] == data
    assert hub_server.repos["org/new"].private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_server.url).model_info("org/new", token=False)
