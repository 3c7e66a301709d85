"""Servers the benchmarks start on this machine: ``live serve`` on a temporary data
dir, the baseline, and for the scaled engine a throwaway Redis and PostgreSQL
with a ``live ledger`` worker. Each can be pinned to a CPU.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pin_pid(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` (threads started later inherit the process mask)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    usable = cpus & set(range(os.cpu_count() or 1))
    if not usable:
        return
    for task in glob.glob(f"/proc/{pid}/task/*"):
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(int(Path(task).name), usable)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, usable)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:g}s:\n{log.read_text()[-3000:]}")


class Process:
    """A child process with a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str],
        log: Path,
        cpus: set[int] | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
            )
        pin_pid(self.proc.pid, cpus)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Scaled:
    """A throwaway redis-server and PostgreSQL on free loopback ports."""

    def __init__(self, root: Path, cpus: set[int] | None) -> None:
        self.root = root
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError(
                "the scaled engine needs redis-server (apt-get install redis-server)"
            )
        self.redis_port = free_port()
        self.pg_port = free_port()
        (root / "redis").mkdir(parents=True)
        self.redis = Process(
            "redis",
            redis_command(redis, self.redis_port, root / "redis", appendfsync="everysec"),
            env=dict(os.environ),
            log=root / "redis.log",
            cpus=cpus,
        )
        user = postgres_os_user()
        if user is not None:
            for folder in (root.parent, root):  # the postgres user must reach its dir
                os.chmod(folder, 0o755)
        pg = root / "postgres"
        init_postgres(pg, user=user)
        self.postgres = Process(
            "postgres",
            postgres_command(pg, self.pg_port, "synchronous_commit=off"),
            env=dict(os.environ),
            log=root / "postgres.log",
            cpus=cpus,
            user=user,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        for port in (self.redis_port, self.pg_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"port {port} not ready") from None
                    time.sleep(0.1)
        time.sleep(0.5)
        subprocess.run(
            [
                str(postgres_bindir() / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
                "live",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            "LIVE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "LIVE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{self.pg_port}/live",
        }

    def stop(self) -> None:
        self.postgres.stop(signal.SIGINT)
        self.redis.stop()


def redis_command(binary: str, port: int, folder: Path, *, appendfsync: str) -> list[str]:
    """A foreground redis-server on loopback ``port``, appending to a file in ``folder``."""
    return [
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
        *("--save", "", "--appendonly", "yes", "--appendfsync", appendfsync),
        *("--daemonize", "no"),
    ]


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root: then its processes run as ``postgres``."""
    return "postgres" if os.geteuid() == 0 else None


def init_postgres(folder: Path, *, user: str | None) -> None:
    """A new cluster in ``folder/data`` (trust auth), with ``folder/sockets`` for its
    Unix sockets, owned by ``user`` when given (the caller makes its parents reachable)."""
    folder.mkdir()
    (folder / "sockets").mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, folder / "sockets"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [
            str(postgres_bindir() / "initdb"),
            *("-D", str(folder / "data"), "-U", "postgres", "--auth=trust"),
            *("-E", "UTF8", "--no-sync"),
        ],
        check=True,
        capture_output=True,
        user=user,
    )


def postgres_command(folder: Path, port: int, *settings: str) -> list[str]:
    """The server of the cluster ``init_postgres`` made in ``folder``, on loopback
    ``port``, with extra ``name=value`` settings."""
    command = [
        str(postgres_bindir() / "postgres"),
        *("-D", str(folder / "data"), "-p", str(port), "-k", str(folder / "sockets")),
        *("-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"),
    ]
    for setting in settings:
        command += ["-c", setting]
    return command


def postgres_bindir() -> Path:
    """Where PostgreSQL's server binaries are (pg_config, PATH, or the Debian layout)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True
            ).stdout.strip()
            candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates.extend(Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise RuntimeError("PostgreSQL's initdb/postgres not found (apt-get install postgresql)")


class LocalServers:
    """Our server (embedded or scaled engine) and the baseline, started on demand."""

    def __init__(
        self,
        *,
        engine: str = "embedded",
        server_cpus: set[int] | None = None,
        helper_cpus: set[int] | None = None,
        keep: bool = False,
    ) -> None:
        self.engine = engine
        self.server_cpus = server_cpus
        self.helper_cpus = helper_cpus
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="live-bench-"))
        self.scaled: Scaled | None = None
        self.running: list[Process] = []

    def start_live(self, *, env: dict[str, str] | None = None) -> tuple[str, Process]:
        port = free_port()
        data = Path(tempfile.mkdtemp(prefix="data-", dir=self.root))
        full = {k: v for k, v in os.environ.items() if not k.startswith("LIVE_")}
        full.update(
            {
                "LIVE_SECRET": SECRET,
                "LIVE_DATA_DIR": str(data),
                "LIVE_PORT": str(port),
                "LIVE_HOST": "127.0.0.1",
                "LIVE_LOG_LEVEL": "warning",
            }
        )
        processes = []
        if self.engine == "scaled":
            if self.scaled is None:
                self.scaled = Scaled(self.root / "services", self.helper_cpus)
            full.update(self.scaled.env)
            # A fresh Redis database and PostgreSQL schema per server start.
            self._reset_scaled()
        full.update(env or {})
        server = Process(
            "live",
            [sys.executable, "-m", "live", "serve"],
            env=full,
            log=self.root / f"live-{port}.log",
            cpus=self.server_cpus,
        )
        processes.append(server)
        if self.engine == "scaled":
            processes.append(
                Process(
                    "ledger",
                    [sys.executable, "-m", "live", "ledger"],
                    env=full,
                    log=self.root / f"ledger-{port}.log",
                    cpus=self.helper_cpus,
                )
            )
        self.running.extend(processes)
        _wait_http(f"http://127.0.0.1:{port}/readyz", server.proc, server.log, 60)
        pin_pid(server.pid, self.server_cpus)
        return f"http://127.0.0.1:{port}", server

    def _reset_scaled(self) -> None:
        assert self.scaled is not None
        import redis

        client = redis.Redis(port=self.scaled.redis_port)
        try:
            client.flushall()
        finally:
            client.close()
        subprocess.run(
            [
                str(postgres_bindir() / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.scaled.pg_port),
                "-U",
                "postgres",
                "-d",
                "live",
                "-q",
                "-c",
                "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
            ],
            check=True,
            capture_output=True,
        )

    def start_baseline(self) -> tuple[str, Process]:
        port = free_port()
        proc = Process(
            "baseline",
            [sys.executable, "-m", "loadtest", "baseline", "--port", str(port)],
            env=dict(os.environ),
            log=self.root / f"baseline-{port}.log",
            cpus=self.server_cpus,
        )
        self.running.append(proc)
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc.proc, proc.log, 30)
        return f"http://127.0.0.1:{port}", proc

    def stop(self, proc: Process) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)
        if proc.name == "live":
            for other in [p for p in self.running if p.name == "ledger"]:
                other.stop()
                self.running.remove(other)

    def close(self) -> None:
        for proc in reversed(self.running):
            proc.stop()
        self.running.clear()
        if self.scaled is not None:
            self.scaled.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
