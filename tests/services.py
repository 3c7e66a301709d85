"""Throwaway Redis and PostgreSQL servers for the scaled engine's tests.

Each server runs from the installed binaries on a free port in a temporary
directory, is reachable on 127.0.0.1 only, and can be stopped, killed (-9) and
restarted on the same port and data, so fault tests can take it away and bring
it back. Readiness is polled with a real connection.

Binaries: ``redis-server``, and PostgreSQL's ``initdb`` and ``postgres`` (found
via ``pg_config --bindir``, ``PATH``, or ``/usr/lib/postgresql/*/bin``). As root,
PostgreSQL runs as the ``postgres`` OS user, which must exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import redis.asyncio as aioredis

from loadtest.servers import postgres_bindir
from store.domain.models import Event, GiftRequest, Profile, PurchaseRequest
from store.engine import open_engine
from store.roles import Engine, EngineConfig

INSTALL_HINT: Final = (
    "the scaled engine's tests need redis-server and PostgreSQL binaries "
    "(Debian/Ubuntu: apt-get install redis-server postgresql)"
)
READY_TIMEOUT: Final = 30.0


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says what to install."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bindir() -> Path:
    try:
        return postgres_bindir()
    except RuntimeError:
        raise MissingBinary(f"PostgreSQL's initdb/postgres not found: {INSTALL_HINT}") from None


class _Server:
    """A child process that can be stopped, killed and started again."""

    def __init__(self, name: str, *, user: str | None = None) -> None:
        self.name = name
        self.user = user
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    async def _ready(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = self._spawn()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail_log()}")
            try:
                await self._ready()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not ready after {READY_TIMEOUT}s:\n{self.tail_log()}"
                    ) from None
                await asyncio.sleep(0.05)

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self.log_path is None:
            raise RuntimeError(f"{self.name} has no directory")
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self._command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
                start_new_session=True,
            )

    async def stop(self) -> None:
        """Graceful shutdown (data flushed), waiting for the process to exit."""
        await self._signal(self._stop_signal())

    async def kill(self) -> None:
        """``kill -9``: no shutdown work at all."""
        await self._signal(signal.SIGKILL)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def _stop_signal(self) -> signal.Signals:
        return signal.SIGTERM

    async def _signal(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        deadline = time.monotonic() + READY_TIMEOUT
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
            await asyncio.sleep(0.02)
        self.process = None

    def tail_log(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1, no RDB snapshots, optional AOF."""

    def __init__(
        self, directory: Path, *, appendonly: bool = True, appendfsync: str = "always"
    ) -> None:
        super().__init__("redis-server")
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingBinary(f"redis-server not found: {INSTALL_HINT}")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    async def _ready(self) -> None:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            if not await client.ping():
                raise RuntimeError("no PONG")
        finally:
            await client.aclose()

    async def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)


class PostgresServer(_Server):
    """A PostgreSQL cluster made by ``initdb`` in a temp dir: trust auth, TCP on
    127.0.0.1 only, its unix socket inside the same dir."""

    def __init__(self, directory: Path) -> None:
        user = "postgres" if os.geteuid() == 0 else None
        super().__init__("postgres", user=user)
        self.bindir = _postgres_bindir()
        self.directory = directory
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.log_path = directory / "postgres.log"
        directory.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        self.log_path.touch()
        if user is not None:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise MissingBinary(
                    f"running as root needs the '{user}' OS user: {INSTALL_HINT}"
                ) from None
            for path in (directory, self.sockets, self.log_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
        )

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def _command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def _stop_signal(self) -> signal.Signals:
        return signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    async def _ready(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    async def kill(self) -> None:
        """``kill -9`` of the postmaster. Its backends notice and exit by themselves;
        wait for them, so the next start finds the shared memory released."""
        children = _children(self.process.pid) if self.process is not None else []
        await super().kill()
        deadline = time.monotonic() + READY_TIMEOUT
        while _any_alive(children):
            if time.monotonic() > deadline:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)


def _any_alive(pids: list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after ")"
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


@dataclass(slots=True)
class Urls:
    redis: str
    database: str


class Services:
    """One Redis and one PostgreSQL for a whole test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.postgres = PostgresServer(root / "postgres")
        self._databases = 0

    @classmethod
    async def start(cls, root: Path | None = None) -> Services:
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="live-services-"))
            os.chmod(root, 0o755)  # the postgres user must reach its dir inside
        services = cls(root)
        try:
            await services.redis.start()
            await services.postgres.start()
        except BaseException:
            await services.close()
            raise
        return services

    async def reset(self) -> Urls:
        """Empty Redis and hand out a brand-new database (the ledger is append-only,
        so a fresh database is the way to start from nothing)."""
        await self.redis.start()
        await self.postgres.start()
        client = await self.redis.client()
        try:
            await client.flushall()
            await client.script_flush()
        finally:
            await client.aclose()
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        conn = await asyncpg.connect(self.postgres.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return Urls(redis=self.redis.url, database=self.postgres.url_for(name))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.stop()
        with contextlib.suppress(Exception):
            await self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- #
# Helpers for the scaled engine's tests
# --------------------------------------------------------------------------- #


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def scaled_engine(
    urls: Urls, *, history_size: int = 1_000, history_seconds: float = 120.0
) -> Engine:
    """The scaled engine on the given (fresh) Redis and database."""
    config = EngineConfig(
        redis_url=urls.redis,
        database_url=urls.database,
        history_size=history_size,
        history_seconds=history_seconds,
    )
    return await open_engine(config)


def adult(user_id: str) -> Profile:
    return Profile(id=user_id, username=user_id, adult=True)


async def fund(engine: Engine, user: Profile, *, package_id: str = "us_7000") -> int:
    package = engine.catalog.package(package_id)
    if package is None:
        raise LookupError(package_id)
    receipt = await engine.wallet.purchase(
        PurchaseRequest(user=user, package=package, payment_id=f"pay-{user.id}-{package_id}")
    )
    return receipt.balance


def rose(
    engine: Engine, user: Profile, key: str, *, room_id: str = "room", count: int = 1
) -> GiftRequest:
    gift = engine.catalog.gift("rose")
    if gift is None:
        raise LookupError("rose")
    return GiftRequest(sender=user, room_id=room_id, gift=gift, count=count, key=key)


async def redis_client(urls: Urls) -> aioredis.Redis:
    return aioredis.Redis.from_url(urls.redis, protocol=2)


async def pg_count(urls: Urls, sql: str) -> int:
    conn = await asyncpg.connect(urls.database)
    try:
        value = await conn.fetchval(sql)
        return int(value)
    finally:
        await conn.close()


class Recorder:
    """A broker listener that keeps what it got."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.resets: list[str] = []

    def on_events(self, room_id: str, events: list[Event]) -> None:
        self.events.extend(events)

    def on_reset(self, room_id: str) -> None:
        self.resets.append(room_id)

    @property
    def seqs(self) -> list[int]:
        return [int(event["seq"]) for event in self.events]
