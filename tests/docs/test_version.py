"""The version lives in one place (mlxk.__version__) and the CHANGELOG's latest release agrees."""

from __future__ import annotations

import re

from mlxk import __version__
from tests.support.cli import run_mlxk
from tests.support.markdown import REPO_ROOT

_RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+[^\]]*)\](?: - (\d{4}-\d{2}-\d{2}))?", re.M)


def _releases() -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in _RELEASE.finditer((REPO_ROOT / "CHANGELOG.md").read_text())]


def test_cli_version_matches_latest_changelog_release() -> None:
    res = run_mlxk("--version", "--json")
    assert res.returncode == 0, res.stderr
    releases = _releases()
    assert releases, "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading"
    assert res.json["data"]["cli_version"] == __version__ == releases[0][0]
    assert releases[0][1] is not None, "the latest release needs a date"


def test_version_is_declared_once() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "pyproject.toml must not pin a version"
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, re.M)
    assert re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"mlxk.__version__"\s*\}', text, re.M)
    versions = re.findall(r'__version__\s*=\s*"([^"]+)"', (REPO_ROOT / "src/mlxk/__init__.py").read_text())
    assert versions == [__version__]


def test_changelog_follows_keep_a_changelog() -> None:
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]", text, re.M)
    sections = set(re.findall(r"^### (\w+)", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections
