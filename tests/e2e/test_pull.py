"""`mlxk pull` end to end: real subprocess, real HTTP (local fake Hub), real cache on disk."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download
from tests.support.cache_factory import add_repo
from tests.support.cli import mlxk_argv, mlxk_env, run_mlxk
from tests.support.hub_repos import (
    big_file,
    model_files,
    safetensors_bytes,
    tree_snapshot,
    write_folder,
)
from tests.support.hub_server import FakeHub, HubProcess
from tests.support.schema import assert_valid

REPO = "org/tiny-model"
NAME = "pull"


def pull(*args: str, env: dict[str, str] | None = None):
    r = run_mlxk("pull", *args, "--json", env=env)
    assert_valid(r.json, NAME)
    return r


def blobs_are_sound(repo_dir: Path) -> None:
    """Every blob's content matches its name; no partial file; every snapshot symlink resolves."""
    for blob in (repo_dir / "blobs").iterdir():
        assert not blob.name.endswith(".incomplete"), blob
        data = blob.read_bytes()
        digests = {hashlib.sha256(data).hexdigest(),
                   hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
        assert blob.name in digests, f"corrupt blob {blob.name}"
    for link in (repo_dir / "snapshots").rglob("*"):
        if link.is_symlink():
            assert link.exists(), f"dangling {link}"


@pytest.fixture
def files() -> dict[str, bytes]:
    return model_files(big_bytes=3 * 1024 * 1024)


def test_pull_creates_the_layout_huggingface_hub_creates(hub_server: FakeHub, hub_cache: Path,
                                                         files: dict[str, bytes], tmp_path: Path) -> None:
    files["docs/extra/notes.md"] = b"nested file"
    sha = hub_server.add_repo(REPO, files)
    r = pull(REPO)
    assert r.returncode == 0, r.stderr
    d = r.json["data"]
    assert d == {"model": REPO, "download_status": "success", "commit_hash": sha,
                 "bytes_downloaded": sum(len(v) for v in files.values()), "message": d["message"]}

    reference = tmp_path / "reference-cache"
    snapshot_download(REPO, cache_dir=reference, endpoint=hub_server.url)
    folder = "models--org--tiny-model"
    # the whole cache root: repo folder, blobs, symlink targets, refs, trees/, .locks, CACHEDIR.TAG
    assert tree_snapshot(hub_cache) == tree_snapshot(reference)
    assert (hub_cache / folder / "refs" / "main").read_text() == sha
    report = scan_cache_dir(hub_cache)
    assert not report.warnings
    assert [r.repo_id for r in report.repos] == [REPO]
    blobs_are_sound(hub_cache / folder)

    again = pull(REPO)
    assert again.returncode == 0
    assert again.json["data"]["download_status"] == "already_exists"
    assert again.json["data"]["bytes_downloaded"] == 0

    # the other commands understand what pull wrote
    listed = run_mlxk("list", "--json").json["data"]["models"]
    assert [(m["name"], m["hash"], m["health"]) for m in listed] == [(REPO, sha, "healthy")]
    gone = run_mlxk("rm", REPO, "--force", "--json")
    assert gone.returncode == 0, gone.stdout
    assert not (hub_cache / folder).exists()
    assert not scan_cache_dir(hub_cache).warnings


def test_human_mode_reports_and_exits_zero(hub_server: FakeHub, files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    r = run_mlxk("pull", REPO)
    assert r.returncode == 0, r.stderr
    assert "Downloaded org/tiny-model@" in r.stdout
    assert "Pulling org/tiny-model@" in r.stderr


@pytest.mark.parametrize("case", ["gated", "gated-wrong-token", "private", "missing"])
def test_denied_or_missing_leaves_no_trace(hub_server: FakeHub, hub_cache: Path,
                                            files: dict[str, bytes], case: str) -> None:
    hub_server.add_repo("org/gated", files, gated="manual", allowed_tokens={"hf_good"})
    hub_server.add_repo("org/private", files, private=True, allowed_tokens={"hf_good"})
    repo = {"gated": "org/gated", "gated-wrong-token": "org/gated", "private": "org/private",
            "missing": "org/missing"}[case]
    env = {"HF_TOKEN": "hf_wrong"} if case == "gated-wrong-token" else None
    before = tree_snapshot(hub_cache.parent)
    r = pull(repo, env=env)
    assert r.returncode == 1
    err = r.json["error"]
    if case.startswith("gated"):
        assert err["type"] == "access_denied"
        assert "HF_TOKEN" in err["message"]
        assert f"{hub_server.url}/org/gated" in err["message"]
        assert err["download_status"] == "access_denied"
    else:
        assert err["type"] == "model_not_found"
        assert "HF_TOKEN" in err["message"]
    assert tree_snapshot(hub_cache.parent) == before
    human = run_mlxk("pull", repo, env=env)
    assert human.returncode == 1
    assert human.stderr.startswith("pull: Error: ")
    assert "Traceback" not in human.stderr
    # with the right token both work
    if case != "missing":
        ok = pull(repo, env={"HF_TOKEN": "hf_good"})
        assert ok.returncode == 0, ok.stdout


def test_not_enough_disk_space_writes_nothing(hub_server: FakeHub, hub_cache: Path,
                                               files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    hub_server.repos[REPO].size_override[big_file(files)] = 10**17
    before = tree_snapshot(hub_cache.parent)
    r = pull(REPO)
    assert r.returncode == 1
    assert r.json["error"]["type"] == "download_failed"
    assert "disk space" in r.json["error"]["message"]
    assert tree_snapshot(hub_cache.parent) == before


def test_revision_pull_and_short_name(hub_server: FakeHub, hub_cache: Path, files: dict[str, bytes]) -> None:
    first = hub_server.add_repo(REPO, files)
    second = hub_server.commit(REPO, {"config.json": files["config.json"].replace(b"llama", b"mistral")})
    r = pull(f"{REPO}@{first[:7]}")
    assert r.returncode == 0, r.stdout
    assert r.json["data"]["commit_hash"] == first
    snaps = hub_cache / "models--org--tiny-model" / "snapshots"
    assert sorted(p.name for p in snaps.iterdir()) == [first]
    assert (snaps / first / "config.json").read_bytes() == files["config.json"]
    # a second revision only fetches what changed
    r2 = pull(REPO)
    assert r2.json["data"]["commit_hash"] == second
    assert r2.json["data"]["bytes_downloaded"] == len(files["config.json"]) + 2
    bad = pull(f"{REPO}@deadbeef")
    assert bad.returncode == 1 and bad.json["error"]["type"] == "hash_not_found"
    assert set(bad.json["error"]["available_hashes"]) == {first, second}
    # a Hub that only takes full hashes in URLs: the prefix is expanded from the commit list
    hub_server.short_revisions = False
    again = pull(f"{REPO}@{first[:7]}")
    assert again.json["data"]["commit_hash"] == first
    assert again.json["data"]["download_status"] == "already_exists"

    # short name: resolved on the Hub as mlx-community/<name>, never via another cached model
    hub_server.add_repo("mlx-community/tiny-model", files)
    add_repo(hub_cache, "someone/tiny-model-instruct", {"config.json": files["config.json"]})
    short = pull("tiny-model")
    assert short.returncode == 0, short.stdout
    assert short.json["data"]["model"] == "mlx-community/tiny-model"
    nothing = pull("no-such-model")
    assert nothing.returncode == 1 and nothing.json["error"]["type"] == "model_not_found"


def test_offline_mode_is_a_clear_error(hub_server: FakeHub, hub_cache: Path, files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    r = pull(REPO, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1
    assert r.json["error"]["type"] == "offline"
    assert "HF_HUB_OFFLINE" in r.json["error"]["message"]
    assert not hub_server.requests
    assert not any(hub_cache.iterdir())


def test_dropped_connection_fails_cleanly_then_retry_succeeds(hub_server: FakeHub, hub_cache: Path,
                                                               files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    big = big_file(files)
    hub_server.drop_connection(big, at_byte=len(files[big]) // 2)  # every attempt dies there
    r = pull(REPO)
    assert r.returncode == 1
    assert r.json["error"]["type"] == "download_failed"
    assert r.stderr == ""  # --json: huggingface_hub's retry warnings are silenced too
    repo_dir = hub_cache / "models--org--tiny-model"
    blobs_are_sound(repo_dir)
    assert not (repo_dir / "snapshots" / hub_server.head_sha(REPO) / big).exists()

    hub_server.clear_drops()
    ok = pull(REPO)
    assert ok.returncode == 0, ok.stdout
    assert ok.json["data"]["download_status"] == "success"
    blobs_are_sound(repo_dir)


def _health(name: str) -> dict:
    r = run_mlxk("health", name, "--json")
    return r.json["data"]


def test_killed_pull_shows_partial_then_resumes(hub_server: FakeHub, hub_cache: Path,
                                                 files: dict[str, bytes]) -> None:
    sha = hub_server.add_repo(REPO, files)
    big = big_file(files)
    size = len(files[big])
    hub_server.throttle(1024 * 1024, paths={big})  # ~3 s for the big file
    proc = subprocess.Popen(mlxk_argv("pull", REPO, "--json"), env=mlxk_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        blobs = hub_cache / "models--org--tiny-model" / "blobs"
        big_sha = hashlib.sha256(files[big]).hexdigest()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in blobs.glob(f"{big_sha}.*.incomplete")):
            assert proc.poll() is None, "pull ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    repo_dir = hub_cache / "models--org--tiny-model"
    # other files may have been in flight too (empty partials); the big one holds real bytes
    partials = list((repo_dir / "blobs").glob(f"{big_sha}.*.incomplete"))
    assert len(partials) == 1
    have = partials[0].stat().st_size
    assert 0 < have < size
    assert partials[0].read_bytes() == files[big][:have]

    health = _health(REPO)
    assert [e["name"] for e in health["unhealthy"]] == [REPO]
    listed = run_mlxk("list", "--json").json["data"]["models"]
    assert [(m["name"], m["health"]) for m in listed] == [(REPO, "unhealthy")]

    hub_server.throttle(None)
    hub_server.wait_idle()  # the killed client's connection is fully torn down
    hub_server.reset_counters()
    r = pull(REPO)
    assert r.returncode == 0, r.stdout
    assert r.json["data"]["commit_hash"] == sha
    assert hub_server.served(REPO, big) == size - have  # only the missing bytes
    ranged = [q for q in hub_server.requests if q["path"] == big and q["method"] == "GET"]
    assert [q["start"] for q in ranged] == [have]
    assert _health(REPO)["summary"]["healthy_count"] == 1
    blobs_are_sound(repo_dir)


def test_progress_bar_in_human_mode_silent_in_json(hub_server: FakeHub, files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    bars_on = {"HF_HUB_DISABLE_PROGRESS_BARS": "0", "TQDM_POSITION": "-1"}  # force bars without a TTY
    r = run_mlxk("pull", REPO, env=bars_on)
    assert r.returncode == 0, r.stderr
    assert "Fetching" in r.stderr and "%" in r.stderr
    other = "org/other-model"
    hub_server.add_repo(other, files)
    j = run_mlxk("pull", other, "--json", env=bars_on)
    assert j.returncode == 0
    assert j.stderr == ""
    assert j.json["data"]["download_status"] == "success"


def test_hub_killed_mid_file_then_back(tmp_path: Path, hub_cache: Path, files: dict[str, bytes]) -> None:
    root = write_folder(tmp_path / "hub-root" / "org" / "tiny-model", files).parents[1]
    hub = HubProcess(root, throttle=1024 * 1024)
    env = {"HF_ENDPOINT": hub.url}
    proc = subprocess.Popen(mlxk_argv("pull", REPO, "--json"), env=mlxk_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        blobs = hub_cache / "models--org--tiny-model" / "blobs"
        big_sha = hashlib.sha256(files[big_file(files)]).hexdigest()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in blobs.glob(f"{big_sha}.*.incomplete")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        hub.kill()  # mid-way through the big file
        out, _ = proc.communicate(timeout=120)
    finally:
        hub.kill()
        if proc.poll() is None:
            proc.kill()
    env_out = json.loads(out)
    assert proc.returncode == 1
    assert env_out["error"]["type"] == "download_failed"
    blobs_are_sound(hub_cache / "models--org--tiny-model")

    hub = HubProcess(root, port=hub.port)
    try:
        ok = pull(REPO, env={"HF_ENDPOINT": hub.url})
        assert ok.returncode == 0, ok.stdout
        assert ok.json["data"]["download_status"] == "success"
        blobs_are_sound(hub_cache / "models--org--tiny-model")
    finally:
        hub.kill()


@pytest.mark.parametrize("ref", ["./local-dir", "../x", "/abs/x", "org/../x", "org//x", "a b/c d", ""])
def test_invalid_references_are_rejected_before_any_request(hub_server: FakeHub, hub_cache: Path,
                                                            ref: str) -> None:
    r = pull(ref)
    assert r.returncode == 1
    assert r.json["error"]["type"] == "ValidationError"
    assert not hub_server.requests and not any(hub_cache.iterdir())


def test_failure_after_preflight_before_any_file_leaves_no_trace(hub_server: FakeHub, hub_cache: Path,
                                                                 files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    hub_server.fail("tree", 403)  # the Hub refuses the file listing after model info said yes
    before = tree_snapshot(hub_cache.parent)
    r = pull(REPO)
    assert r.returncode == 1
    assert r.json["error"]["type"] in ("download_failed", "access_denied")
    assert tree_snapshot(hub_cache.parent) == before
    hub_server.failures.clear()
    assert pull(REPO).returncode == 0


def test_concurrent_pulls_share_the_locks(hub_server: FakeHub, hub_cache: Path,
                                          files: dict[str, bytes]) -> None:
    """Two pulls of one model at once: both succeed and every file crosses the wire once."""
    sha = hub_server.add_repo(REPO, files)
    big = big_file(files)
    hub_server.throttle(2 * 1024 * 1024, paths={big})
    procs = [subprocess.Popen(mlxk_argv("pull", REPO, "--json"), env=mlxk_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert {o["data"]["commit_hash"] for o in outs} == {sha}
    for name, data in files.items():
        assert hub_server.served(REPO, name) == len(data), name
    blobs_are_sound(hub_cache / "models--org--tiny-model")
    assert not scan_cache_dir(hub_cache).warnings


def test_damaged_cached_file_is_fetched_again(hub_server: FakeHub, hub_cache: Path,
                                              files: dict[str, bytes]) -> None:
    hub_server.add_repo(REPO, files)
    assert pull(REPO).returncode == 0
    big = big_file(files)
    snap = hub_cache / "models--org--tiny-model" / "snapshots" / hub_server.head_sha(REPO)
    blob = (snap / big).resolve()
    blob.write_bytes(files[big][:1000])  # truncated behind the cache's back
    assert run_mlxk("health", REPO, "--json").returncode == 1
    hub_server.reset_counters()
    r = pull(REPO)
    assert r.returncode == 0, r.stdout
    assert r.json["data"]["download_status"] == "success"
    assert hub_server.served(REPO, big) == len(files[big])
    assert (snap / big).read_bytes() == files[big]
    assert run_mlxk("health", REPO, "--json").returncode == 0


def test_complete_download_of_an_unhealthy_model_reports_its_health(hub_server: FakeHub,
                                                                    hub_cache: Path) -> None:
    """Every byte arrived, but the repo itself is no sound model: success, health in the message."""
    broken = {"config.json": b"{not json", "model.safetensors": safetensors_bytes({"w": 4096})}
    hub_server.add_repo("org/broken-config", broken)
    r = pull("org/broken-config")
    assert r.returncode == 0, r.stdout
    d = r.json["data"]
    assert d["download_status"] == "success"
    assert d["bytes_downloaded"] == sum(len(v) for v in broken.values())
    assert "health check:" in d["message"] and "config.json" in d["message"]
    snap = hub_cache / "models--org--broken-config" / "snapshots" / d["commit_hash"]
    assert (snap / "config.json").read_bytes() == broken["config.json"]
    again = run_mlxk("pull", "org/broken-config")
    assert again.returncode == 0
    assert "already in the cache; health check:" in again.stdout
    assert "Warning: org/broken-config health check:" in again.stderr
    # a GGUF-only repo (no config.json) is a healthy download
    hub_server.add_repo("org/some-gguf", {"model-Q4_0.gguf": b"GGUF" + bytes(5000)})
    gguf = pull("org/some-gguf")
    assert gguf.returncode == 0 and gguf.json["data"]["message"].endswith("; healthy.")



def test_pull_from_a_mirror_whose_model_info_has_no_blob_ids(hub_server: FakeHub, hub_cache: Path,
                                                             files: dict[str, bytes]) -> None:
    """Mirrors and proxies may omit blobId: pull takes it from the tree (issue 12: was a TypeError)."""
    sha = hub_server.add_repo(REPO, files)
    hub_server.omit_blob_ids = True
    r = pull(REPO)
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.json["data"]["download_status"] == "success" and r.json["data"]["commit_hash"] == sha
    blobs_are_sound(hub_cache / "models--org--tiny-model")
