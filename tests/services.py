"""Throwaway Redis and PostgreSQL servers for the scaled engine's tests, and
helpers for those tests.

The servers are ``loadtest.processes``'s: each runs from the installed binaries
on a free port in a temporary directory and can be stopped, killed (-9) and
restarted on the same port and data, so fault tests can take it away and bring
it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from loadtest.processes import PostgresServer, RedisCluster, RedisServer
from store.domain.models import Event, GiftRequest, Profile, PurchaseRequest
from store.engine import open_engine
from store.roles import Engine, EngineConfig


@dataclass(slots=True)
class Urls:
    redis: str
    database: str


class Services:
    """One Redis and one PostgreSQL for a whole test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.postgres = PostgresServer(
            root / "postgres", settings=["fsync=off", "full_page_writes=off"]
        )
        self._databases = 0
        self._cluster: RedisCluster | None = None

    @classmethod
    async def start(cls, root: Path | None = None) -> Services:
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="live-services-"))
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
        client = self.redis.client()
        try:
            await client.flushall()
            await client.script_flush()
        finally:
            await client.aclose()
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        await self.postgres.execute(f'CREATE DATABASE "{name}"')
        return Urls(redis=self.redis.url, database=self.postgres.url_for(name))

    async def cluster(self) -> RedisCluster:
        """A Redis Cluster of three primaries, started by the first test asking for it
        and checked to agree on its slot map each time it is handed out."""
        if self._cluster is None:
            cluster = RedisCluster(self.root / "cluster", primaries=3)
            try:
                await cluster.start()
            except BaseException:
                await cluster.stop()
                raise
            self._cluster = cluster
        # a test that moved a slot and gave it back leaves gossip to finish: the next
        # one starts on a map all nodes agree on, or fails here saying why
        await self._cluster.settle()
        return self._cluster

    async def reset_cluster(self) -> Urls:
        """Like ``reset``, with the Redis Cluster (emptied) in place of the single Redis."""
        cluster = await self.cluster()
        await cluster.flush()
        urls = await self.reset()
        return Urls(redis=cluster.url, database=urls.database)

    async def close(self) -> None:
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                await self._cluster.stop()
        with contextlib.suppress(Exception):
            await self.redis.stop()
        with contextlib.suppress(Exception):
            await self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- #
# Helpers for the scaled engine's tests
# --------------------------------------------------------------------------- #


@contextlib.asynccontextmanager
async def replicated_cluster(directory: Path) -> AsyncIterator[RedisCluster]:
    """A Redis Cluster of its own for a fault test: three primaries with a replica
    each, failing over after a one-second node timeout; stopped on leaving."""
    cluster = RedisCluster(directory, primaries=3, replicas=1, node_timeout_ms=1_000)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


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
