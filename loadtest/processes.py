"""The child processes the benchmarks, the chaos run and the test suite start on
this machine: a throwaway ``redis-server`` and PostgreSQL cluster, our own
``live serve`` / ``live ledger`` on a free port, and the baseline.

Each one logs to a file, is reachable on 127.0.0.1 only, and can be stopped,
killed (-9) and started again with the same command, port and data, so fault
tests can take it away and bring it back. Readiness is polled with a real
request (PING, ``SELECT 1``, an HTTP 200).

Binaries: ``redis-server``, and PostgreSQL's ``initdb`` and ``postgres`` (found
via ``pg_config --bindir``, ``PATH``, or Debian's ``/usr/lib/postgresql/*/bin``).
PostgreSQL refuses to run as root: then it runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import redis.asyncio as aioredis
from redis.crc import key_slot

INSTALL_HINT: Final = (
    "the scaled engine needs redis-server and PostgreSQL binaries "
    "(Debian/Ubuntu: apt-get install redis-server postgresql)"
)
READY_TIMEOUT: Final = 30.0
"""Seconds a process may take to start serving, or to exit once signalled."""


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says what to install."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
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


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # "pid (comm) state ppid ...": comm may contain spaces, so split after ")"
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``live serve --workers`` runs its workers as
    child processes), from /proc (Linux)."""
    found = [pid]
    for each in found:
        found.extend(child_pids(each))
    return found


def any_alive(pids: Sequence[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def live_env(
    *, secret: str, data_dir: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This environment without any ``LIVE_*`` setting, plus what a ``live`` command
    on loopback ``port`` needs, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVE_")}
    env.update(
        {
            "LIVE_SECRET": secret,
            "LIVE_DATA_DIR": str(data_dir),
            "LIVE_PORT": str(port),
            "LIVE_HOST": "127.0.0.1",
            "LIVE_LOG_LEVEL": "warning",
        }
    )
    env.update(extra or {})
    return env


def live_command(*args: str) -> list[str]:
    """``python -m live …`` with this interpreter."""
    return [sys.executable, "-m", "live", *args]


class ChildProcess:
    """A child process with a log file, in a session of its own, that can be
    stopped, killed and started again with the same command."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cpus: set[int] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.user = user
        self.cpus = cpus
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen[bytes] | None = None
        """The running process; ``None`` before the start and after a stop."""

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.popen.pid

    def spawn(self) -> None:
        """Start the process unless it runs; returns at once."""
        if self.alive:
            return
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
                start_new_session=True,
            )
        pin_pid(self.popen.pid, self.cpus)

    async def ready(self) -> None:
        """Raise until the process serves (by default it does once started)."""

    async def start(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Start the process unless it runs, and wait until it serves."""
        if self.alive:
            return
        self.spawn()
        popen = self.popen
        deadline = time.monotonic() + timeout
        while True:
            if popen is None or popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                await self.ready()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not ready after {timeout:g}s:\n{self.tail()}"
                    ) from None
            await asyncio.sleep(0.05)

    async def signal(self, sig: int, *, timeout: float = READY_TIMEOUT) -> int | None:
        """Send ``sig`` and wait for the exit (``SIGKILL`` after ``timeout``); after a
        ``SIGKILL`` also wait for its children to go, so a restart finds what they held
        (a port, shared memory) released. Returns the exit code (``None``: not started)."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is not None:
            self.popen = None
            return popen.returncode
        children = child_pids(popen.pid) if sig == signal.SIGKILL else []
        popen.send_signal(sig)
        deadline = time.monotonic() + timeout
        while popen.poll() is None:
            if time.monotonic() > deadline:
                popen.kill()
            await asyncio.sleep(0.02)
        while any_alive(children):
            if time.monotonic() > deadline:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
        self.popen = None
        return popen.returncode

    async def stop(self, *, timeout: float = READY_TIMEOUT) -> int | None:
        """Graceful shutdown with the process's own stop signal."""
        return await self.signal(self.stop_signal, timeout=timeout)

    async def kill(self) -> None:
        """``kill -9``: no shutdown work at all."""
        await self.signal(signal.SIGKILL)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def tail(self, chars: int = 3000) -> str:
        """The end of the log, for error messages."""
        if not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-chars:]


class HttpProcess(ChildProcess):
    """A web server: ready when ``ready_url`` answers 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        ready_url: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        super().__init__(name, command, log=log, env=env, cpus=cpus)
        self.ready_url = ready_url

    async def ready(self) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.ready_url, timeout=2.0)
        if response.status_code != 200:
            raise RuntimeError(f"{self.ready_url}: {response.status_code}")


class RedisServer(ChildProcess):
    """``redis-server`` on 127.0.0.1 in ``directory``: no RDB snapshots, an append-only
    file (fsync'd ``always`` or ``everysec``) unless ``appendonly`` is off."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = True,
        appendfsync: str = "always",
        cpus: set[int] | None = None,
        replica_of: int | None = None,
    ) -> None:
        """``replica_of``: the port of a primary on 127.0.0.1 to replicate."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingBinary(f"redis-server not found: {INSTALL_HINT}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.appendfsync = appendfsync
        self.port = free_port()
        command = [
            *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--save", "", "--appendonly", "yes" if appendonly else "no"),
            *("--appendfsync", appendfsync, "--daemonize", "no", "--protected-mode", "yes"),
        ]
        if replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(replica_of)]
        super().__init__("redis-server", command, log=directory / "redis.log", cpus=cpus)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    async def ready(self) -> None:
        client = self.client()
        try:
            if not await client.ping():
                raise RuntimeError("no PONG")
        finally:
            await client.aclose()

    async def execute(self, *args: object) -> Any:
        """One command on a connection of its own, and its reply (RESP2)."""
        client = self.client()
        try:
            return await client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()


def cluster_ports(count: int) -> list[int]:
    """``count`` free ports whose cluster bus port (port + 10000) is free and valid too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10_000 >= 65_536 or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        ports.append(port)
    return ports


class RedisClusterNode(RedisServer):
    """One ``redis-server --cluster-enabled yes`` of a ``RedisCluster``."""

    def __init__(self, directory: Path, *, port: int, node_timeout_ms: int) -> None:
        super().__init__(directory, appendonly=False)
        self.port = port
        self.command = [
            *self.command[:1],
            *("--port", str(port)),
            *self.command[3:],
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(node_timeout_ms)),
        ]


class RedisCluster:
    """A throwaway Redis Cluster: ``primaries`` primaries (and ``replicas`` replicas
    each) on free ports, created with ``redis-cli --cluster create``; ready once
    every node reports ``cluster_state:ok``."""

    def __init__(
        self,
        directory: Path,
        *,
        primaries: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2_000,
    ) -> None:
        if shutil.which("redis-cli") is None:
            raise MissingBinary(f"redis-cli not found: {INSTALL_HINT}")
        self.directory = directory
        self.primaries = primaries
        self.replicas = replicas
        ports = cluster_ports(primaries * (1 + replicas))
        self.nodes = [
            RedisClusterNode(directory / str(port), port=port, node_timeout_ms=node_timeout_ms)
            for port in ports
        ]

    @property
    def url(self) -> str:
        """The engine's URL: every node is a seed."""
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{seeds}"

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))
        if not await self._state_ok(self.nodes[0]):
            if self.primaries < 3:
                await self._create_small()
            else:
                await self._create()
        deadline = time.monotonic() + READY_TIMEOUT
        while not all([await self._state_ok(node) for node in self.nodes]):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            await asyncio.sleep(0.05)
        if self.replicas:
            await self._replicas_synced(deadline)

    async def _create(self) -> None:
        create = [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{node.port}" for node in self.nodes),
            *("--cluster-replicas", str(self.replicas), "--cluster-yes"),
        ]
        process = await asyncio.create_subprocess_exec(
            *create, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output.decode()}")

    async def _create_small(self) -> None:
        """``redis-cli --cluster create`` wants three primaries: fewer (a one-shard
        cluster, the baseline of a scaling measurement) are assigned by hand, the
        slots split evenly and each replica following its primary."""
        primaries = self.nodes[: self.primaries]
        step = 16_384 // len(primaries)
        first = self.nodes[0]
        for index, node in enumerate(self.nodes):
            client = node.client()
            try:
                if index:
                    await client.execute_command("CLUSTER", "MEET", "127.0.0.1", first.port)  # type: ignore[no-untyped-call]
                if index < len(primaries):
                    end = 16_383 if index == len(primaries) - 1 else (index + 1) * step - 1
                    await client.execute_command(  # type: ignore[no-untyped-call]
                        "CLUSTER", "ADDSLOTSRANGE", index * step, end
                    )
            finally:
                await client.aclose()
        ids = [await self._node_id(node) for node in primaries]
        for index, node in enumerate(self.nodes[len(primaries) :]):
            primary = ids[index % len(ids)]
            deadline = time.monotonic() + READY_TIMEOUT
            client = node.client()
            try:
                while True:  # known once the MEET went round
                    try:
                        await client.execute_command("CLUSTER", "REPLICATE", primary)  # type: ignore[no-untyped-call]
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)
            finally:
                await client.aclose()

    async def _replicas_synced(self, deadline: float) -> None:
        """Every primary has its replicas attached and in sync (``WAIT``)."""
        for node in self.nodes:
            client = node.client()
            try:
                while True:
                    role = await client.execute_command("ROLE")  # type: ignore[no-untyped-call]
                    if role[0] != b"master":
                        break
                    synced = await client.execute_command("WAIT", self.replicas, 100)  # type: ignore[no-untyped-call]
                    if int(synced) >= self.replicas:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the Redis Cluster's replicas did not sync")
            finally:
                await client.aclose()

    @staticmethod
    async def _node_id(node: RedisServer) -> str:
        reply = await node.execute("CLUSTER", "MYID")
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def state_ok(self) -> bool:
        """Every running node reports ``cluster_state:ok`` (a failover is over)."""
        for node in self.nodes:
            if node.alive and not await self._state_ok(node):
                return False
        return True

    async def primary_of(self, key: str) -> RedisClusterNode:
        """The node serving ``key``'s slot now, as a live node sees it."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                slots = await node.execute("CLUSTER", "SLOTS")
            except Exception:
                continue
            for start, end, primary, *_ in slots:
                if int(start) <= slot <= int(end):
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"no node serves slot {slot}")

    async def migrate_slot(
        self, slot: int, source: RedisClusterNode, target: RedisClusterNode
    ) -> int:
        """Move ``slot`` with its keys from ``source`` to ``target`` (primaries), as
        ``redis-cli --cluster reshard`` does: ``IMPORTING``/``MIGRATING``, ``MIGRATE``
        in batches (calls meanwhile get ``ASK``), then ``SETSLOT … NODE`` on every
        primary. Returns how many keys moved."""
        source_id, target_id = await self._node_id(source), await self._node_id(target)
        await target.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := await source.execute("CLUSTER", "GETKEYSINSLOT", slot, 100):
            await source.execute("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        others = [n for n in self.nodes if n not in (source, target) and n.alive]
        for node in (target, source, *others):
            role = await node.execute("ROLE")
            if role[0] == b"master":
                await node.execute("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    async def replica_of(self, primary: RedisClusterNode) -> RedisClusterNode:
        """One replica following ``primary``."""
        for node in self.nodes:
            if node is primary or not node.alive:
                continue
            role = await node.execute("ROLE")
            if role[0] == b"slave" and int(role[2]) == primary.port:
                return node
        raise RuntimeError(f"no replica follows {primary.port}")

    async def disagreement(self) -> str | None:
        """Why the nodes do not agree on one slot map, or ``None`` when they do: every
        node runs and reports ``cluster_state:ok``, none holds a slot half-migrated,
        and all answer the same ``CLUSTER SLOTS``."""
        maps: dict[int, tuple[tuple[int, int, int], ...]] = {}
        for node in self.nodes:
            if not node.alive:
                return f"node {node.port} is not running:\n{node.tail()}"
            if not await self._state_ok(node):
                return f"node {node.port} does not report cluster_state:ok"
            table = await node.execute("CLUSTER", "NODES")
            text = table.decode() if isinstance(table, bytes) else str(table)
            if "->-" in text or "-<-" in text:
                return f"node {node.port} holds a slot half-migrated:\n{text}"
            slots = await node.execute("CLUSTER", "SLOTS")
            maps[node.port] = tuple(
                sorted((int(start), int(end), int(primary[1])) for start, end, primary, *_ in slots)
            )
        if len(set(maps.values())) > 1:
            return f"the nodes disagree on the slot map: {maps}"
        return None

    async def settle(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the nodes agree on one slot map (gossip after a slot moved);
        raise, saying what is wrong, if they do not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (problem := await self.disagreement()) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster did not settle: {problem}")
            await asyncio.sleep(0.05)

    @staticmethod
    async def _state_ok(node: RedisServer) -> bool:
        info = await node.execute("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    async def flush(self) -> None:
        """Empty every primary (replicas follow) and their script caches."""
        for node in self.nodes:
            client = node.client()
            try:
                role = await client.execute_command("ROLE")  # type: ignore[no-untyped-call]
                if role[0] == b"master":
                    await client.flushall()
                    await client.script_flush()
            finally:
                await client.aclose()

    async def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await node.stop()


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
    raise MissingBinary(f"PostgreSQL's initdb/postgres not found: {INSTALL_HINT}")


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root: then its processes run as ``postgres``."""
    return "postgres" if os.geteuid() == 0 else None


class PostgresServer(ChildProcess):
    """A PostgreSQL cluster made by ``initdb`` in ``directory``: trust auth, TCP on
    127.0.0.1 only, its Unix socket inside the same folder, extra ``name=value``
    ``settings``. Stopped with SIGINT: the "fast" shutdown (roll back sessions,
    checkpoint, exit).

    Run as root, the cluster belongs to the ``postgres`` OS user and the folder
    holding ``directory`` is opened to it (mode 755)."""

    def __init__(
        self, directory: Path, *, settings: Sequence[str] = (), cpus: set[int] | None = None
    ) -> None:
        bindir = postgres_bindir()
        user = postgres_os_user()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        sockets = directory / "sockets"
        sockets.mkdir(exist_ok=True)
        log = directory / "postgres.log"
        log.touch()
        if user is not None:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise MissingBinary(
                    f"running as root needs the '{user}' OS user: {INSTALL_HINT}"
                ) from None
            os.chmod(directory.parent, 0o755)
            for path in (directory, sockets, log):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(directory / "data"), "-U", "postgres"),
                *("--auth=trust", "-E", "UTF8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        command = [
            *(str(bindir / "postgres"), "-D", str(directory / "data"), "-p", str(self.port)),
            *("-k", str(sockets), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"),
        ]
        for setting in settings:
            command += ["-c", setting]
        super().__init__(
            "postgres", command, log=log, user=user, cpus=cpus, stop_signal=signal.SIGINT
        )

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    async def ready(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    async def execute(self, sql: str, *, database: str = "postgres") -> None:
        conn = await asyncpg.connect(self.url_for(database))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


class PrometheusServer(HttpProcess):
    """A Prometheus server (Debian's ``prometheus`` package) on 127.0.0.1 with its
    data in ``directory``, scraping ``targets`` (``host:port``) every
    ``scrape_interval``; ``bearer_token`` is sent with each scrape when set."""

    def __init__(
        self,
        directory: Path,
        *,
        targets: Sequence[str],
        scrape_interval: str = "1s",
        bearer_token: str = "",
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise MissingBinary("prometheus not found (Debian/Ubuntu: apt-get install prometheus)")
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        job = [
            "  - job_name: live",
            "    static_configs:",
            f"      - targets: [{', '.join(repr(t) for t in targets)}]",
        ]
        if bearer_token:
            job += ["    authorization:", f"      credentials: {bearer_token!r}"]
        config = directory / "prometheus.yml"
        config.write_text(
            "\n".join(
                [
                    "global:",
                    f"  scrape_interval: {scrape_interval}",
                    f"  evaluation_interval: {scrape_interval}",
                    "scrape_configs:",
                    *job,
                ]
            )
            + "\n"
        )
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        super().__init__(
            "prometheus",
            command,
            ready_url=f"{self.url}/-/ready",
            log=directory / "prometheus.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query's result vector (``[{"metric": …, "value": [t, "v"]}]``)."""
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0
            )
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{promql}: {body}")
        result: list[dict[str, object]] = body["data"]["result"]
        return result
