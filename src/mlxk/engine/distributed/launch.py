"""Start and supervise the ranks of a distributed run with mlx.launch's own machinery.

Hosts come from ``--hosts h1,h2`` or ``--hostfile FILE`` (mlx.launch's JSON format,
parsed by mlx's ``Hostfile``); each rank is started by mlx.launch's ``RemoteProcess``
(local ``bash`` for 127.0.0.1, ``ssh`` otherwise) with the same environment protocol
``mlx.launch`` uses (``MLX_RANK``, ``MLX_HOSTFILE`` for the ring backend,
``NCCL_HOST_IP``/``MLX_WORLD_SIZE`` for NCCL). The ranks talk to each other only
through MLX's backends. What this module adds over ``mlx.launch``: a preflight that
fails fast on unreachable hosts, per-rank exit statuses turned into one clear error,
and a guarantee that no rank outlives the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk import config
from mlxk.engine.distributed import protocol as rankproto
from mlxk.errors import ExecutionError, ValidationError

LOCAL = "127.0.0.1"
BACKENDS = ("ring", "mpi", "nccl", "jaccl", "jaccl-ring")
DEFAULT_PORT = 32323


@dataclass
class RankHost:
    rank: int
    ssh: str
    ips: list[str]
    rdma: list[Any] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.ssh in (LOCAL, "localhost")


@dataclass
class HostSet:
    hosts: list[RankHost]
    backend: str
    envs: list[str]


def parse_hosts(hosts: str | None, hostfile: str | None, backend: str | None) -> HostSet:
    """Parse ``--hosts`` / ``--hostfile`` exactly as mlx.launch does, then normalise."""
    # Private module: mlx (0.32.4 here) has no public API for mlx.launch's hostfile parsing or its
    # remote processes, only the CLI. Kept to mlx.launch's own behaviour; revisit on mlx upgrades.
    from mlx._distributed_utils.common import Hostfile

    try:
        hf = Hostfile.from_file(hostfile) if hostfile else Hostfile.from_list(hosts or "")
    except ValueError as exc:
        raise ValidationError(f"bad host list: {exc}") from exc
    chosen = backend or hf.backend or "ring"
    if chosen not in BACKENDS:
        raise ValidationError(f"unknown backend '{chosen}' (one of {', '.join(BACKENDS)})")
    if chosen == "mpi":
        raise ValidationError("the mpi backend is not supported by mlxk's launcher (ranks must report "
                              "back individually, which mpirun hides); use --backend ring (the default)")
    out = []
    for h in hf.hosts:
        ssh = LOCAL if h.ssh_hostname == "localhost" else h.ssh_hostname
        out.append(RankHost(h.rank, ssh, list(h.ips), list(h.rdma or [])))
    if len(out) < 2:
        raise ValidationError("a distributed run needs at least two ranks (e.g. --hosts 127.0.0.1,127.0.0.1)")
    return HostSet(out, chosen, list(hf.envs))


def _resolve_ip(name: str) -> str:
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        raise ValidationError(f"host '{name}' cannot be resolved: {exc}") from exc


def preflight(hs: HostSet, ssh_timeout: float = 5.0) -> None:
    """Fail before any weights load: names resolve, IPs exist, SSH answers."""
    if hs.backend == "ring":
        for h in hs.hosts:
            if not h.ips:
                h.ips = [_resolve_ip(h.ssh) if not h.local else LOCAL]
    if hs.backend in ("nccl", "jaccl", "jaccl-ring") and not hs.hosts[0].ips:
        hs.hosts[0].ips = [_resolve_ip(hs.hosts[0].ssh)]
    remote = sorted({h.ssh for h in hs.hosts if not h.local})
    if remote and not _which("ssh"):
        raise ExecutionError(f"'ssh' is not installed; it is needed to start ranks on {', '.join(remote)}")
    for name in remote:
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(ssh_timeout)}",
               "-o", "LogLevel=ERROR", name, "true"]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=ssh_timeout + 5)
        except subprocess.TimeoutExpired:
            raise ExecutionError(f"host '{name}' is unreachable: ssh did not answer within "
                                 f"{ssh_timeout:.0f}s (see docs/distributed.md)", host=name) from None
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["ssh failed"])[-1]
            raise ExecutionError(f"host '{name}' is unreachable over ssh: {detail} "
                                 "(mlx.launch needs password-less ssh; see docs/distributed.md)",
                                 host=name)


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _free_port_run(count: int) -> int:
    """A base port with ``count`` consecutive free ports on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((LOCAL, 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        ok = True
        for p in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind((LOCAL, p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    return DEFAULT_PORT


def backend_env(hs: HostSet) -> tuple[dict[str, str], list[str]]:
    """(files, env) for mlx's launch script, the way mlx.launch builds them per backend."""
    env = list(hs.envs)
    files: dict[str, str] = {}
    if hs.backend == "ring":
        count = sum(len(h.ips) for h in hs.hosts)
        all_local = all(h.local for h in hs.hosts)
        port = config.dist_port() or (_free_port_run(count) if all_local else DEFAULT_PORT)
        ring = []
        for h in hs.hosts:
            node = []
            for ip in h.ips:
                node.append(f"{ip}:{port}")
                port += 1
            ring.append(node)
        files["MLX_HOSTFILE"] = json.dumps(ring)
    elif hs.backend == "nccl":
        env += [f"NCCL_HOST_IP={hs.hosts[0].ips[0]}", f"NCCL_PORT={config.dist_port() or 12345}",
                f"MLX_WORLD_SIZE={len(hs.hosts)}"]
    elif hs.backend in ("jaccl", "jaccl-ring"):
        env.append(f"MLX_JACCL_COORDINATOR={hs.hosts[0].ips[0]}:{DEFAULT_PORT}")
        if hs.backend == "jaccl-ring":
            env.append("MLX_JACCL_RING=1")
        files["MLX_IBV_DEVICES"] = json.dumps([h.rdma for h in hs.hosts])
    return files, env


def _describe_status(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code == -signal.SIGALRM:
        return ("gave up: no answer from the other ranks within the collective deadline "
                "(MLXK_DIST_TIMEOUT); a rank or its host is gone or frozen")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by {name}"
    if code == rankproto.EXIT_LOST_PEER:
        return "lost contact with the other ranks"
    return f"exited with code {code}"


class RankProcess:
    """One rank, started through mlx.launch's ``RemoteProcess``."""

    def __init__(self, host: RankHost, python: str, files: dict[str, str], env: list[str],
                 command: list[str]) -> None:
        from mlx._distributed_utils.launch import RemoteProcess  # private, see parse_hosts

        self.host = host
        self.rank = host.rank
        self.remote = RemoteProcess(host.rank, LOCAL if host.local else host.ssh, python, None,
                                    files, env, command)
        self.proc: subprocess.Popen = self.remote.process
        self.pidfile: str | None = None
        self.killed = False
        self.last_error: str | None = None   # the rank's own "Error:" line, if it printed one

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self, grace: float = 5.0) -> None:
        if self.host.local and self.pidfile and self.proc.poll() is not None:
            # mlx's launch script leaves its pidfile behind on a normal exit; remove ours only.
            with contextlib.suppress(OSError, ValueError):
                pf = Path(self.pidfile)
                if pf.is_absolute() and int(pf.read_text().strip()) == self.proc.pid:
                    pf.unlink()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.killed = True
        if self.pidfile and not self.host.local:
            script = self.remote.make_kill_script(self.pidfile)
            subprocess.run(["ssh", "-o", "BatchMode=yes", self.host.ssh, script],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=15, check=False)


class RankGroup:
    """All ranks of one run; rank 0's events arrive through ``on_event``."""

    def __init__(self, hs: HostSet, command: list[str], on_event: Callable[[dict], None],
                 stdout_passthrough: bool = False, python: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.hs = hs
        self.on_event = on_event
        self.stdout_passthrough = stdout_passthrough
        files, env = backend_env(hs)
        for k, v in (extra_env or {}).items():
            env.append(f"{k}={v}")
        self.verbose = config.dist_verbose()
        if self.verbose and hs.backend == "ring":
            env.append("MLX_RING_VERBOSE=1")
        self.ranks = [RankProcess(h, python or sys.executable, files,
                                  env + (_local_env() if h.local else []), command) for h in hs.hosts]
        self._threads: list[threading.Thread] = []
        self._write_lock = threading.Lock()
        for rp in self.ranks:
            for stream, is_out in ((rp.proc.stdout, True), (rp.proc.stderr, False)):
                t = threading.Thread(target=self._pump, args=(rp, stream, is_out), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, rp: RankProcess, stream: Any, is_stdout: bool) -> None:
        first = is_stdout
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            if first:  # mlx's launch script prints its pidfile first
                first = False
                rp.pidfile = line.strip()
                continue
            if is_stdout and rp.rank == 0:
                ev = rankproto.decode_event(line)
                if ev is not None:
                    self.on_event(ev)
                    continue
                if self.stdout_passthrough:
                    self._write(sys.stdout, line)
                    continue
            if not self.verbose and line.startswith("[ring]"):
                continue
            marker = f"mlxk rank {rp.rank}: Error: "
            if line.startswith(marker):
                rp.last_error = line[len(marker):].strip()
            prefix = "" if rp.rank == 0 else f"[rank {rp.rank}] "
            self._write(sys.stderr, prefix + line)

    def _write(self, stream: Any, text: str) -> None:
        with self._write_lock:
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass

    def send(self, data: bytes, rank: int = 0) -> None:
        proc = self.ranks[rank].proc
        try:
            assert proc.stdin is not None
            proc.stdin.write(data)
            proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def close_stdin(self) -> None:
        for rp in self.ranks:
            try:
                if rp.proc.stdin:
                    rp.proc.stdin.close()
            except OSError:
                pass

    def statuses(self) -> list[int | None]:
        return [rp.poll() for rp in self.ranks]

    def first_failure(self) -> RankProcess | None:
        for rp in self.ranks:
            code = rp.poll()
            if code is not None and code != 0 and not rp.killed:
                return rp
        return None

    def wait(self, stop: threading.Event | None = None, grace: float = 5.0,
             timeout: float | None = None) -> list[int | None]:
        """Block until every rank is done. A failed rank gives the others ``grace``
        seconds to notice and report, then they are terminated; so is everything
        still running after ``timeout`` seconds."""
        failed_at: float | None = None
        start = time.monotonic()
        while True:
            codes = self.statuses()
            if all(c is not None for c in codes):
                break
            if timeout is not None and time.monotonic() - start > timeout:
                break
            if failed_at is None and (self.first_failure() is not None or (stop and stop.is_set())):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace:
                break
            time.sleep(0.05)
        self.shutdown()
        return self.statuses()

    def shutdown(self, grace: float = 5.0) -> None:
        self.close_stdin()
        for rp in self.ranks:
            if rp.poll() is None:
                rp.terminate(grace)
            else:
                rp.terminate(0)
        for t in self._threads:
            t.join(timeout=2)

    def failure_message(self) -> str | None:
        """One sentence naming the ranks that failed first, or None when all exited 0."""
        parts = []
        for rp in self.ranks:
            code = rp.poll()
            if code not in (0, None) and not rp.killed:
                why = f" ({rp.last_error})" if rp.last_error and rp.rank else ""
                parts.append(f"rank {rp.rank} ({rp.host.ssh}) {_describe_status(code)}{why}")
        return "; ".join(parts) or None


def _local_env() -> list[str]:
    """Local ranks import this very mlxk, even when it runs from a source checkout."""
    import mlxk

    src = str(Path(mlxk.__file__).resolve().parent.parent)
    parts = [src] + [p for p in config.python_path() if p != src]
    return [f"PYTHONPATH={os.pathsep.join(parts)}"]


def worker_command(spec: dict[str, Any], entry: str) -> list[str]:
    """The argv every rank runs (mlx's launch script prefixes the python interpreter); ``entry``
    is the module the caller picked as the rank's main (``mlxk.operations.rank``)."""
    return ["-m", entry, json.dumps(spec, separators=(",", ":"))]


def model_ref_for_ranks(name: str, commit: str | None, path: Path, cached: bool) -> str:
    """Each rank resolves the model in its own cache (same revision) or at the same path."""
    if cached and commit:
        return f"{name}@{commit}"
    return str(path)
