"""Health checks: one revision (``check_revision``) or the whole cache (``health_report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk.cache import integrity, scan
from mlxk.cache.resolve import is_explicit_path, resolve
from mlxk.operations.models import Evaluated, evaluate, evaluate_revision


@dataclass(frozen=True)
class HealthEntry:
    name: str
    status: str                     # healthy | unhealthy
    reason: str | None
    hash: str | None = None
    problems: tuple[str, ...] = field(default=())
    runtime_compatible: bool | None = None
    runtime_reason: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason, "hash": self.hash,
                "problems": list(self.problems), "runtime_compatible": self.runtime_compatible,
                "runtime_reason": self.runtime_reason}


def entry_from(ev: Evaluated, name: str | None = None, extra: list[str] | None = None) -> HealthEntry:
    problems = [*ev.problems, *(extra or [])]
    d = ev.description
    # Broken files cannot run whatever the config says; the reason is then the first problem.
    runtime_ok = d.runtime_compatible and not problems
    runtime_reason = d.runtime_reason if not d.runtime_compatible else (problems[0] if problems else None)
    return HealthEntry(name or ev.name, "unhealthy" if problems else "healthy",
                       problems[0] if problems else None, ev.commit, tuple(problems),
                       runtime_ok, runtime_reason)


def check_revision(repo_id: str, commit: str | None = None, root: Path | None = None,
                   verify: bool = False) -> HealthEntry:
    """Integrity of ``repo_id`` at ``commit`` (default: its default revision). Never raises for bad files."""
    repo = scan.scan_repo(repo_id, root)
    rev = repo.revision(commit) if commit else repo.default_revision
    if commit and rev is None:
        return HealthEntry(repo_id, "unhealthy", f"revision {commit[:12]} is not cached", commit,
                           (f"revision {commit[:12]} is not cached",))
    ev = evaluate_revision(repo, rev)
    extra = integrity.verify_digests(rev) if verify and rev is not None else None
    return entry_from(ev, extra=extra)


def _targets(pattern: str | None, root: Path | None) -> list[tuple[Evaluated, str]]:
    if pattern and (is_explicit_path(pattern) or "@" in pattern):
        resolved = resolve(pattern, root)
        return [(evaluate(resolved, root), resolved.display)]
    out = []
    for repo in scan.scan_cache(root, pattern):
        ev = evaluate_revision(repo, repo.default_revision)
        out.append((ev, ev.name))
    return out


def health_report(pattern: str | None = None, verify: bool = False,
                  root: Path | None = None) -> dict[str, Any]:
    """``{"healthy": [...], "unhealthy": [...], "summary": {...}}`` for the matching models."""
    targets = _targets(pattern, root)
    extras: list[list[str]] = [[] for _ in targets]
    if verify:
        revs = [(i, ev.revision) for i, (ev, _) in enumerate(targets) if ev.revision is not None]
        for (i, _), problems in zip(revs, integrity.verify_revisions([r for _, r in revs]), strict=True):
            extras[i] = problems
    entries = [entry_from(ev, name, extra) for (ev, name), extra in zip(targets, extras, strict=True)]
    healthy = [e.to_dict() for e in entries if e.healthy]
    unhealthy = [e.to_dict() for e in entries if not e.healthy]
    return {"healthy": healthy, "unhealthy": unhealthy,
            "summary": {"total": len(entries), "healthy_count": len(healthy),
                        "unhealthy_count": len(unhealthy)},
            "verified": verify}
