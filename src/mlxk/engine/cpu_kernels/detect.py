"""Whether mlxk's CPU kernels apply on this machine, and where their build lives.

Imports no mlx (``mlxk --version`` uses it). The build folder is keyed by everything the
compiled extension depends on: the mlx version (it links MLX's C++ ABI), the Python ABI, the
CPU architecture and features, and a hash of the C++ source, so a change in any of them gets a
fresh build and an old build is never loaded against a different mlx.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlxk import config, platform

MODULE_NAME = "_mlxk_cpu_kernels"
CSRC = Path(__file__).parent / "csrc"
REQUIRED_FLAGS = ("avx2", "fma", "f16c")
FAILED_MARKER = "FAILED"   # holds the reason a compile failed; the log sits next to it
X86 = ("x86_64", "amd64")


@dataclass(frozen=True)
class Verdict:
    """``state``: ``off`` | ``not_applicable`` | ``unavailable`` | ``will_build`` | ``ready``
    (and ``active`` once a process has loaded the extension)."""

    state: str
    reason: str
    path: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"state": self.state, "reason": self.reason, "path": self.path}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (whose import package has the same name),
    read from its ``.dist-info`` folder name: ``importlib.metadata`` costs ~50 ms of imports,
    too much for ``mlxk --version``."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    found = sorted(site.glob(f"{name}-[0-9]*.dist-info"))
    if len(found) == 1:
        return found[0].name[len(name) + 1:-len(".dist-info")]
    from importlib import metadata  # editable installs, unusual layouts

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def mlx_version() -> str | None:
    return dist_version("mlx")


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(CSRC.glob("*.cpp")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_key(version: str) -> str:
    abi = (sysconfig.get_config_var("SOABI") or "py").replace("-", "_")
    return f"mlx{version}-{abi}-{platform.cpu_arch()}-avx2fma-{source_hash()}"


def build_dir(version: str) -> Path:
    return config.cpu_kernels_dir() / build_key(version)


def extension_file(directory: Path) -> Path:
    return directory / f"{MODULE_NAME}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def not_applicable() -> Verdict | None:
    """Why the kernels are not for this process (off, other device, other CPU), or None."""
    if not config.cpu_kernels_enabled():
        return Verdict("off", "turned off by MLXK_CPU_KERNELS=off")
    device = platform.mlx_device()
    if device != "cpu" or not platform.is_linux():
        return Verdict("not_applicable", f"MLX runs on {device}; the kernels are for Linux CPU only")
    arch = platform.cpu_arch()
    if arch not in X86:
        return Verdict("not_applicable", f"{arch}: MLX's own CPU kernel is used (no NEON kernel yet)")
    missing = [f for f in REQUIRED_FLAGS if f not in cpu_flags()]
    if missing:
        return Verdict("not_applicable", f"the CPU lacks {'/'.join(missing).upper()}")
    return None
