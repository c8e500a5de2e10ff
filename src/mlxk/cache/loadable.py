"""May this resolved model be loaded? Integrity first, then runtime compatibility.

``run``, ``embed`` and ``serve`` ask this before they load anything, so a model
``health`` calls broken (a dangling ``tokenizer.json`` link, truncated weights)
is refused with the health reason instead of answering with an empty string or
an HTTP 500. Reads files only (no mlx import).
"""

from __future__ import annotations

from pathlib import Path

from mlxk.cache import detect, integrity, scan
from mlxk.cache.detect import ModelDescription
from mlxk.cache.resolve import ResolvedModel
from mlxk.cache.scan import CachedRepo, Revision
from mlxk.errors import NotRuntimeCompatible


def local_revision(path: Path, files: dict[str, Path]) -> tuple[CachedRepo, Revision]:
    """A local model directory seen as a one-revision repo, so the cache's checks apply."""
    entries = tuple(scan.CachedFile(n, str(p), None, p.stat().st_size, p.stat().st_mtime, True)
                    for n, p in sorted(files.items()))
    rev = Revision("0" * 40, path, (), entries)
    return CachedRepo(str(path), path, (rev,), ()), rev


def integrity_problems(resolved: ResolvedModel) -> list[str]:
    """What ``health`` would report for the selected revision (empty: healthy)."""
    if resolved.cached:
        repo = scan.scan_repo(resolved.repo_id or resolved.name)
        rev = repo.revision(resolved.commit) if resolved.commit else repo.default_revision
        files: dict = integrity.readable_files(rev) if rev else {}
    else:
        files = detect.local_files(resolved.path)
        repo, rev = local_revision(resolved.path, files)
    _cfg, cfg_err = detect.load_json(files.get("config.json"))
    return integrity.check(repo, rev, cfg_err)


def ensure_loadable(resolved: ResolvedModel) -> ModelDescription:
    """The model's description; ``NotRuntimeCompatible`` naming the first problem when
    it is unhealthy (reason from ``health``) or cannot run with the installed MLX stack."""
    problems = integrity_problems(resolved)
    if problems:
        hint = f"; 'mlxk health {resolved.name}' lists the problems" if resolved.cached else ""
        raise NotRuntimeCompatible(f"{resolved.name} is unhealthy: {problems[0]}{hint}",
                                   reason=problems[0])
    desc = detect.describe(resolved.path, repo_id=resolved.repo_id)
    if not desc.runtime_compatible:
        raise NotRuntimeCompatible(
            f"{resolved.name} cannot be run: {desc.runtime_reason or 'not runtime compatible'}",
            reason=desc.runtime_reason)
    return desc
