"""mlxk.hub.client and mlxk.hub.upload in-process, against the local fake Hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.hub_repos import big_file, model_files, write_folder
from tests.support.hub_server import FakeHub

from mlxk.cache import layout
from mlxk.errors import AccessDenied, DownloadFailed, HashNotFound, ModelNotFound, OfflineError
from mlxk.hub import client, upload

REPO = "org/model"


@pytest.fixture
def files() -> dict[str, bytes]:
    return model_files(big_bytes=512 * 1024)


def test_preflight_describes_the_revision(hub_server: FakeHub, files: dict[str, bytes]) -> None:
    sha = hub_server.add_repo(REPO, files)
    remote = client.preflight(REPO)
    served = hub_server.repos[REPO].commits[sha].files
    assert remote.commit == sha
    assert {f.path: (f.etag, f.size, f.lfs) for f in remote.files} == \
        {p: (h.etag, h.size, h.lfs) for p, h in served.items()}
    assert remote.total_size == sum(len(v) for v in files.values())


def test_errors_are_translated_with_cause(hub_server: FakeHub, files: dict[str, bytes],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    hub_server.add_repo("org/gated", files, gated="auto", allowed_tokens={"ok"})
    with pytest.raises(AccessDenied) as denied:
        client.preflight("org/gated")
    assert type(denied.value.__cause__).__name__ == "GatedRepoError"
    assert denied.value.extra["url"] == f"{hub_server.url}/org/gated"
    with pytest.raises(ModelNotFound):
        client.preflight("org/nothing")
    hub_server.add_repo(REPO, files)
    with pytest.raises(HashNotFound):
        client.preflight(REPO, "v9")
    monkeypatch.setenv("HF_TOKEN", "ok")
    assert client.preflight("org/gated").gated
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        client.preflight(REPO)


def test_resume_fetches_only_missing_bytes(hub_server: FakeHub, hub_cache: Path,
                                           files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    remote = client.preflight(REPO)
    big = big_file(files)
    entry = next(f for f in remote.files if f.path == big)
    blobs = layout.blobs_dir(REPO, hub_cache)
    blobs.mkdir(parents=True)
    (blobs / f"{entry.etag}.1234abcd.incomplete").write_bytes(files[big][:200_000])
    (blobs / f"{entry.etag}.0000aaaa.incomplete").write_bytes(files[big][:1000])  # older leftover
    assert client.missing_bytes(remote, layout.repo_dir(REPO, hub_cache)) == \
        remote.total_size - 200_000
    fetched = client.resume_partials(remote, hub_cache)
    assert fetched == len(files[big]) - 200_000
    assert hub_server.served(REPO, big) == fetched
    assert (blobs / entry.etag).read_bytes() == files[big]
    assert not list(blobs.glob("*.incomplete"))


def test_resume_discards_a_partial_with_wrong_bytes(hub_server: FakeHub, hub_cache: Path,
                                                     files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    remote = client.preflight(REPO)
    entry = next(f for f in remote.files if f.path == big_file(files))
    blobs = layout.blobs_dir(REPO, hub_cache)
    blobs.mkdir(parents=True)
    (blobs / f"{entry.etag}.1234abcd.incomplete").write_bytes(b"\0" * 1000)
    client.resume_partials(remote, hub_cache)
    assert not (blobs / entry.etag).exists()
    assert not list(blobs.iterdir())


def test_disk_space_check(hub_server: FakeHub, hub_cache: Path, files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    hub_server.repos[REPO].size_override[big_file(files)] = 10**17
    remote = client.preflight(REPO)
    with pytest.raises(DownloadFailed, match="disk space"):
        client.check_disk_space(remote, layout.repo_dir(REPO, hub_cache))
    assert not layout.repo_dir(REPO, hub_cache).exists()


def test_folder_checks_and_diff(tmp_path: Path, files: dict[str, bytes]) -> None:
    folder = write_folder(tmp_path / "m", files)
    assert upload.check_folder(folder).ok
    local = upload.local_files(folder)
    remote = {p: client.RemoteEntry(p, f.size, f.git_sha1, None) for p, f in local.items()}
    assert upload.diff(local, remote)["unchanged"] == len(local)
    remote["gone.txt"] = client.RemoteEntry("gone.txt", 3, "x" * 40, None)
    remote["config.json"] = client.RemoteEntry("config.json", 2, "y" * 40, None)
    d = upload.diff(local, remote)
    assert [c["path"] for c in d["deleted"]] == ["gone.txt"]
    assert [c["path"] for c in d["changed"]] == ["config.json"]
    (folder / "model.safetensors.index.json").unlink()
    assert "2 safetensors shards but no index file" in upload.check_folder(folder).problems


def test_unreachable_hub_is_a_clear_download_error(hub_cache: Path) -> None:
    # conftest points HF_ENDPOINT at a closed port
    with pytest.raises(DownloadFailed, match=r"Cannot reach the Hub at http://127\.0\.0\.1:9"):
        client.preflight(REPO)
    assert not any(hub_cache.iterdir())


def test_os_errors_map_to_contract_errors() -> None:
    from mlxk.errors import PermissionDenied
    from mlxk.hub.translate import translate

    assert isinstance(translate(PermissionError(13, "Permission denied"), REPO), PermissionDenied)
    full = translate(OSError(28, "No space left on device"), REPO)
    assert isinstance(full, DownloadFailed) and "No space left" in full.message


@pytest.mark.parametrize("tree_fails", [False, True], ids=["from-tree", "from-file-metadata"])
def test_model_info_without_blob_ids_falls_back(hub_server: FakeHub, hub_cache: Path,
                                                files: dict[str, bytes], tree_fails: bool) -> None:
    """Mirrors and proxies may omit blobId: the tree listing, else each file's metadata, gives it
    (issue 12: this was a TypeError)."""
    sha = hub_server.add_repo(REPO, files)
    hub_server.omit_blob_ids = True
    if tree_fails:
        hub_server.fail("tree", 404, "EntryNotFound")
    remote = client.preflight(REPO)
    served = hub_server.repos[REPO].commits[sha].files
    assert {f.path: (f.etag, f.size, f.lfs) for f in remote.files} == \
        {p: (h.etag, h.size, h.lfs) for p, h in served.items()}
    if not tree_fails:  # huggingface_hub's own download lists the tree too
        path = client.snapshot(remote, hub_cache, progress=False)
        assert {p.name for p in path.iterdir()} == set(files)
