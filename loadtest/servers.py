"""Servers the benchmarks start on this machine: ``live serve`` on a temporary data
dir, the baseline, and for the scaled engine a throwaway Redis and PostgreSQL
with a ``live ledger`` worker. Each can be pinned to a CPU.

The benchmarks run one server at a time between measurements, so these calls
block until the server is ready (or gone).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import asyncpg

from loadtest.processes import (
    ChildProcess,
    HttpProcess,
    PostgresServer,
    RedisCluster,
    RedisServer,
    free_port,
    live_command,
    live_env,
    pin_pid,
    process_tree,
)

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
BENCH_STOP_TIMEOUT = 20.0


class Scaled:
    """A throwaway redis-server and PostgreSQL on free loopback ports; with
    ``replicas``, that many Redis replicas too, and money answered once all of them
    have it (``LIVE_REDIS_WAIT_REPLICAS``). With ``cluster`` > 0, a Redis Cluster of
    that many primaries (``replicas`` each) instead of the one redis-server."""

    def __init__(
        self, root: Path, cpus: set[int] | None, *, replicas: int = 0, cluster: int = 0
    ) -> None:
        self.cpus = cpus
        self.cluster = (
            RedisCluster(root / "cluster", primaries=cluster, replicas=replicas)
            if cluster
            else None
        )
        self.redis = RedisServer(root / "redis", appendfsync="everysec", cpus=cpus)
        self.replicas = [
            RedisServer(
                root / f"replica-{n}",
                appendfsync="everysec",
                cpus=cpus,
                replica_of=self.redis.port,
            )
            for n in range(0 if cluster else replicas)
        ]
        self.wait_replicas = replicas
        self.postgres = PostgresServer(
            root / "postgres", settings=["synchronous_commit=off"], cpus=cpus
        )
        asyncio.run(self._start())

    async def _start(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()
            for node in self.cluster.nodes:
                pin_pid(node.pid, self.cpus)
            await self.postgres.start()
            await self.postgres.execute("CREATE DATABASE live")
            return
        await self.redis.start()
        for replica in self.replicas:
            await replica.start()
        await self.postgres.start()
        await self.postgres.execute("CREATE DATABASE live")
        client = self.redis.client()
        try:
            deadline = time.monotonic() + 30
            wanted = len(self.replicas)
            while wanted:
                synced = await client.execute_command("WAIT", wanted, 100)  # type: ignore[no-untyped-call]
                if int(synced) >= wanted:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis replicas did not sync")
        finally:
            await client.aclose()

    @property
    def env(self) -> dict[str, str]:
        return {
            "LIVE_REDIS_URL": self.redis.url if self.cluster is None else self.cluster.url,
            "LIVE_DATABASE_URL": self.postgres.url_for("live"),
            "LIVE_REDIS_WAIT_REPLICAS": str(self.wait_replicas),
        }

    def count(self, sql: str) -> int:
        """One number from the ledger database (``SELECT count(*) ...``)."""

        async def fetch() -> int:
            conn = await asyncpg.connect(self.postgres.url_for("live"))
            try:
                return int(await conn.fetchval(sql))
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def command_time(self) -> dict[str, tuple[int, int]]:
        """Per command, the calls and microseconds every primary has spent on it so far."""
        nodes = (
            [self.redis]
            if self.cluster is None
            else [node for node in self.cluster.nodes if node.alive]
        )
        return asyncio.run(command_time(nodes))

    def redis_pids(self) -> list[int]:
        """Every redis-server of the deployment (primaries and replicas)."""
        if self.cluster is not None:
            return [node.pid for node in self.cluster.nodes]
        return [self.redis.pid, *(replica.pid for replica in self.replicas)]

    async def reset(self) -> None:
        """A fresh Redis database and PostgreSQL schema."""
        if self.cluster is not None:
            await self.cluster.flush()
        else:
            client = self.redis.client()
            try:
                await client.flushall()
            finally:
                await client.aclose()
        await self.postgres.execute(
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public;", database="live"
        )

    def stop(self) -> None:
        asyncio.run(self._stop())

    async def _stop(self) -> None:
        await self.postgres.stop(timeout=BENCH_STOP_TIMEOUT)
        if self.cluster is not None:
            await self.cluster.stop()
        for replica in self.replicas:
            await replica.stop(timeout=BENCH_STOP_TIMEOUT)
        await self.redis.stop(timeout=BENCH_STOP_TIMEOUT)


class LiveHook(Protocol):
    """Told when our server has started and when it is about to stop."""

    def started(self) -> None: ...

    def stopping(self) -> None: ...


class LocalServers:
    """Our server (embedded or scaled engine) and the baseline, started on demand."""

    def __init__(
        self,
        *,
        engine: str = "embedded",
        server_cpus: set[int] | None = None,
        helper_cpus: set[int] | None = None,
        keep: bool = False,
        workers: int = 1,
        redis_replicas: int = 0,
        redis_cluster: int = 0,
    ) -> None:
        self.engine = engine
        self.redis_replicas = redis_replicas
        self.redis_cluster = redis_cluster
        self.on_live: list[LiveHook] = []
        self.workers = workers
        """``live serve --workers``: more than one needs the scaled engine."""
        self.server_cpus = server_cpus
        self.helper_cpus = helper_cpus
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="live-bench-"))
        self.scaled: Scaled | None = None
        self.running: list[ChildProcess] = []

    def start_live(self, *, env: dict[str, str] | None = None) -> tuple[str, ChildProcess]:
        port = free_port()
        data = Path(tempfile.mkdtemp(prefix="data-", dir=self.root))
        extra: dict[str, str] = {}
        if self.engine == "scaled":
            if self.scaled is None:
                self.scaled = Scaled(
                    self.root,
                    self.helper_cpus,
                    replicas=self.redis_replicas,
                    cluster=self.redis_cluster,
                )
            extra.update(self.scaled.env)
            # A fresh Redis database and PostgreSQL schema per server start.
            asyncio.run(self.scaled.reset())
        if self.workers > 1:
            extra["LIVE_WORKERS"] = str(self.workers)
        extra.update(env or {})
        full = live_env(secret=SECRET, data_dir=data, port=port, extra=extra)
        url = f"http://127.0.0.1:{port}"
        server = HttpProcess(
            "live",
            live_command("serve"),
            ready_url=url + "/readyz",
            env=full,
            log=self.root / f"live-{port}.log",
            cpus=self.server_cpus,
        )
        self.running.append(server)
        if self.engine == "scaled":
            ledger = ChildProcess(
                "ledger",
                live_command("ledger"),
                env=full,
                log=self.root / f"ledger-{port}.log",
                cpus=self.helper_cpus,
            )
            ledger.spawn()
            self.running.append(ledger)
        asyncio.run(server.start(timeout=60))
        for pid in process_tree(server.pid):  # the workers too
            pin_pid(pid, self.server_cpus)
        for hook in list(self.on_live):
            hook.started()
        return url, server

    def start_baseline(self) -> tuple[str, ChildProcess]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = HttpProcess(
            "baseline",
            [sys.executable, "-m", "loadtest", "baseline", "--port", str(port)],
            ready_url=url + "/healthz",
            env=dict(os.environ),
            log=self.root / f"baseline-{port}.log",
            cpus=self.server_cpus,
        )
        self.running.append(proc)
        asyncio.run(proc.start(timeout=30))
        return url, proc

    def stop(self, proc: ChildProcess) -> None:
        stopping = [proc]
        if proc.name == "live":
            for hook in list(self.on_live):
                hook.stopping()
            stopping += [p for p in self.running if p.name == "ledger"]
        for each in stopping:
            asyncio.run(each.stop(timeout=BENCH_STOP_TIMEOUT))
            if each in self.running:
                self.running.remove(each)

    def close(self) -> None:
        for proc in reversed(self.running):
            asyncio.run(proc.stop(timeout=BENCH_STOP_TIMEOUT))
        self.running.clear()
        if self.scaled is not None:
            self.scaled.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


async def command_time(nodes: Sequence[RedisServer]) -> dict[str, tuple[int, int]]:
    """Per command, the calls and microseconds ``nodes`` have spent on it so far, summed
    (``INFO commandstats``; a script's own calls count under their commands as well as
    under ``evalsha``)."""
    totals: dict[str, tuple[int, int]] = {}
    for node in nodes:
        client = node.client()
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            calls, usec = totals.get(name, (0, 0))
            totals[name] = (calls + int(value["calls"]), usec + int(value["usec"]))
    return totals
