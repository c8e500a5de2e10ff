"""Evaluate one cached revision (or a local directory): what it is, whether it is intact, whether it runs.

The one place ``list``, ``show``, ``health`` and the server's ``/v1/models`` learn these facts
(pure file reading, no mlx import).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlxk.cache import detect, integrity, scan
from mlxk.cache.detect import ModelDescription
from mlxk.cache.resolve import ResolvedModel
from mlxk.cache.scan import CachedRepo, Revision


@dataclass(frozen=True)
class Evaluated:
    """Everything list/show/health learn about one revision (or local directory)."""

    name: str
    commit: str | None
    path: Path
    cached: bool
    files: dict[str, str | Path]
    description: ModelDescription
    problems: tuple[str, ...]
    size_bytes: int
    last_modified: float
    repo: CachedRepo | None = None
    revision: Revision | None = None

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def runtime_compatible(self) -> bool:
        """A broken download (LFS pointer, truncated weights) cannot run, whatever the config says."""
        return self.healthy and self.description.runtime_compatible

    @property
    def reason(self) -> str | None:
        if self.problems:
            return self.problems[0]
        return None if self.description.runtime_compatible else self.description.runtime_reason


def evaluate_revision(repo: CachedRepo, rev: Revision | None) -> Evaluated:
    files = integrity.readable_files(rev) if rev else {}
    cfg, cfg_err = detect.load_json(files.get("config.json"))
    path = rev.path if rev else repo.path
    desc = detect.describe(path, files, repo.repo_id, cfg, cfg_err)
    problems = integrity.check(repo, rev, cfg_err, config_parsed=cfg is not None)
    problems += integrity.vision_problems(files, cfg, desc.has_chat_template)
    return Evaluated(repo.repo_id, rev.commit if rev else None, path, True, files, desc,
                     tuple(problems), rev.size_bytes if rev else 0,
                     rev.last_modified if rev else _mtime(repo.path), repo, rev)


def evaluate_local(path: Path) -> Evaluated:
    files = detect.local_files(path)
    cfg, cfg_err = detect.load_json(files.get("config.json"))
    desc = detect.describe(path, files, None, cfg, cfg_err)
    entries = tuple(scan.CachedFile(n, str(p), None, p.stat().st_size, p.stat().st_mtime, True)
                    for n, p in sorted(files.items()))
    fake_rev = Revision("0" * 40, path, (), entries)
    fake_repo = CachedRepo(str(path), path, (fake_rev,), ())
    problems = integrity.check(fake_repo, fake_rev, cfg_err)
    problems += integrity.vision_problems(files, cfg, desc.has_chat_template)
    return Evaluated(str(path), None, path, False, files, desc, tuple(problems),
                     fake_rev.size_bytes, fake_rev.last_modified)


def evaluate(resolved: ResolvedModel, root: Path | None = None) -> Evaluated:
    if not resolved.cached:
        return evaluate_local(resolved.path)
    repo = scan.scan_repo(resolved.repo_id or resolved.name, root)
    rev = repo.revision(resolved.commit) if resolved.commit else repo.default_revision
    return evaluate_revision(repo, rev)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
