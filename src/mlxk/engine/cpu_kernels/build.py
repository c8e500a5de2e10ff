"""Compile the CPU kernels into the per-machine cache, once, under a file lock.

The build calls the C++ compiler directly (two translation units: our kernel and nanobind's
runtime, compiled in parallel, then linked against the installed ``libmlx.so``). Everything it
needs is checked first, so a machine without a compiler, nanobind or Python headers gets a clear
reason and the pure MLX path instead of an error. Imports no mlx.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlxk import config
from mlxk.engine.cpu_kernels import detect

logger = logging.getLogger("mlxk.engine.cpu_kernels")

NANOBIND_RANGE = ((3, 1), (4, 0))   # mlx 0.32 wheels are built with nanobind 3.x's ABI
COMPILERS = ("g++", "c++", "clang++")
COMPILE_TIMEOUT_S = 600
LOCK_TIMEOUT_S = 900
COMMON_FLAGS = ("-std=c++20", "-O2", "-fPIC", "-fvisibility=hidden", "-fno-strict-aliasing")
KERNEL_FLAGS = ("-mavx2", "-mfma", "-mf16c", "-DNB_DOMAIN=mlx")
NANOBIND_FLAGS = ("-DNB_BUILD", "-DNB_COMPACT_ASSERTIONS")


class BuildError(Exception):
    """The kernels cannot be built here; the message says why (shown by ``mlxk --version``)."""


@dataclass(frozen=True)
class Toolchain:
    compiler: str
    python_include: Path
    nanobind: Path       # the nanobind package folder (include/, src/, ext/)
    mlx: Path            # the mlx package folder (include/, lib/)


def _nanobind_dir() -> Path:
    spec = importlib.util.find_spec("nanobind")
    if spec is None or not spec.origin:
        raise BuildError("nanobind is not installed (pip install 'nanobind>=3.1,<4')")
    root = Path(spec.origin).parent
    version = detect.dist_version("nanobind") or "?"
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError as exc:
        raise BuildError(f"cannot tell nanobind's version ({version})") from exc
    low, high = NANOBIND_RANGE
    if not low <= parts < high:
        raise BuildError(f"nanobind {'.'.join(map(str, parts))} installed; mlx needs >=3.1,<4")
    if not (root / "src" / "nb_combined.cpp").is_file():
        raise BuildError(f"nanobind at {root} has no sources (src/nb_combined.cpp)")
    return root


def _mlx_dir() -> Path:
    spec = importlib.util.find_spec("mlx")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("mlx is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "include" / "mlx" / "mlx.h").is_file():
        raise BuildError(f"the mlx wheel at {root} ships no C++ headers")
    if not (root / "lib" / "libmlx.so").is_file():
        raise BuildError(f"libmlx.so not found in {root / 'lib'} (is mlx[cpu] installed?)")
    return root


def _compiler() -> str:
    chosen = config.cpu_kernels_compiler()
    candidates = [chosen] if chosen else list(COMPILERS)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    if chosen:
        raise BuildError(f"C++ compiler {chosen!r} not found")
    raise BuildError("no C++ compiler found (install g++ or set CXX)")


def toolchain() -> Toolchain:
    """Everything a build needs, or ``BuildError`` naming what is missing (no compiling)."""
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        raise BuildError(f"Python headers missing ({include}/Python.h; install python3-dev)")
    return Toolchain(_compiler(), include, _nanobind_dir(), _mlx_dir())


def _run(commands: list[list[str]], log: Path) -> None:
    """Run the compile commands in parallel; ``BuildError`` with the log's tail on failure."""
    with log.open("a", encoding="utf-8") as out:
        procs = []
        for cmd in commands:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=COMPILE_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(-9)
    if any(codes):
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise BuildError(f"compiling failed ({'; '.join(tail) or 'no output'}); log: {log}")


def _compile(tools: Toolchain, work: Path, target: Path, log: Path) -> None:
    nb, mlx = tools.nanobind, tools.mlx
    includes = [f"-I{nb / 'include'}", f"-I{nb / 'ext' / 'robin_map' / 'include'}",
                f"-I{tools.python_include}"]
    kernel_obj, nb_obj, lib = work / "kernel.o", work / "nanobind.o", work / target.name
    _run([
        [tools.compiler, *COMMON_FLAGS, *KERNEL_FLAGS, *includes, f"-I{mlx / 'include'}",
         "-c", str(detect.CSRC / "qmm.cpp"), "-o", str(kernel_obj)],
        [tools.compiler, *COMMON_FLAGS, *NANOBIND_FLAGS, *includes,
         "-c", str(nb / "src" / "nb_combined.cpp"), "-o", str(nb_obj)],
    ], log)
    _run([[tools.compiler, "-shared", "-o", str(lib), str(kernel_obj), str(nb_obj),
           f"-L{mlx / 'lib'}", "-lmlx", f"-Wl,-rpath,{mlx / 'lib'}"]], log)
    os.replace(lib, target)   # atomic: a reader sees no file or a whole one


def ensure_built(version: str) -> Path:
    """The compiled extension for mlx ``version``, building it if needed (once per machine:
    concurrent processes wait on the lock and reuse the result). ``BuildError`` if impossible;
    a failed compile is remembered (``FAILED`` in the build folder) and not retried."""
    directory = detect.build_dir(version)
    target = detect.extension_file(directory)
    if target.is_file():
        return target
    failed = directory / detect.FAILED_MARKER
    if failed.is_file():
        raise BuildError(failed.read_text(encoding="utf-8", errors="replace").strip())
    tools = toolchain()
    from filelock import FileLock, Timeout  # here, not at import: `mlxk --version` stays fast

    directory.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(directory) + ".lock", timeout=LOCK_TIMEOUT_S):
            if target.is_file():
                return target
            log = directory / "build.log"
            logger.warning("mlxk: compiling CPU kernels for mlx %s (once per machine, ~30 s)",
                           version)
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=directory) as work:
                try:
                    _compile(tools, Path(work), target, log)
                except (BuildError, OSError) as exc:
                    failed.write_text(f"build failed: {exc}\n", encoding="utf-8")
                    raise BuildError(f"build failed: {exc}") from exc
            with log.open("a", encoding="utf-8") as out:
                out.write(f"built in {time.monotonic() - started:.1f} s\n")
    except Timeout as exc:
        raise BuildError(f"another process holds the build lock {exc.lock_file}") from exc
    return target
