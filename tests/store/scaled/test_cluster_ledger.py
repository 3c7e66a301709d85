"""The ledger worker, the audit and the repair on a real Redis Cluster: every
slot's outbox filed, dead letters parked in their own slot, an entry kept until
the settle group has it too, system balances summed over the slots, a lost
balance put back; overlay presence on a room's slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from store.domain.models import coins_account
from store.scaled.client import CommandBatcher, connect_redis
from store.scaled.keys import CLUSTER, system_field, wallet_key
from store.scaled.ledger import PostgresLedger
from store.scaled.outbox import SETTLE_GROUP, run_ledger_worker
from store.scaled.postgres import create_pool, migrate
from store.scaled.presence import RedisOverlayPresence
from store.scaled.repair import repair_scaled
from store.scaled.slots import slot_of
from tests.services import Services, Urls, eventually, pg_count
from tests.store.scaled.outboxes import grant, settle

pytestmark = pytest.mark.scaled


@dataclass
class Cluster:
    urls: Urls
    redis: Any
    batcher: CommandBatcher
    pool: asyncpg.Pool

    def ledger(self) -> PostgresLedger:
        return PostgresLedger(self.pool, self.redis, batcher=self.batcher)


@pytest.fixture
async def cluster(services: Services) -> AsyncIterator[Cluster]:
    urls = await services.reset_cluster()
    await migrate(urls.database)
    redis = connect_redis(urls.redis)
    batcher = CommandBatcher(urls.redis)
    pool = await create_pool(urls.database)
    try:
        yield Cluster(urls, redis, batcher, pool)
    finally:
        await pool.close()
        await batcher.close()
        await redis.aclose()


@contextlib.asynccontextmanager
async def _worker(urls: Urls, **options: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_ledger_worker(redis_url=urls.redis, database_url=urls.database, stop=stop, **options)
    )
    try:
        yield
    finally:
        stop.set()
        await task


async def test_the_worker_files_every_slots_outbox_and_the_audit_sums_the_slots(
    cluster: Cluster,
) -> None:
    users = [f"user-{i}" for i in range(40)]
    outboxes = [CLUSTER.outbox(wallet_key(u)) for u in users]
    assert len({slot_of(o) for o in outboxes}) > 30  # the users are spread over slots
    for n, user in enumerate(users):
        await grant(cluster.redis, user, 100 + n, n=n)
    await settle(cluster.redis, outboxes)
    async with _worker(cluster.urls, poll_seconds=0.02, sweep_seconds=60.0):
        await eventually(lambda: _filed(cluster.urls, len(users)), what="every slot's outbox filed")
        # known outboxes: found again by the per-primary hint, not a sweep (60 s)
        more = [await grant(cluster.redis, u, 7, n=100 + i) for i, u in enumerate(users[:5])]
        await settle(cluster.redis, outboxes)
        await eventually(
            lambda: _filed(cluster.urls, len(users) + len(more)),
            what="new entries of known outboxes filed between sweeps",
        )
    # the audit drains, then deletes the entries both groups are done with
    report = await cluster.ledger().audit()
    assert report.ok, report.public()
    assert report.transactions == len(users) + 5
    hot = await cluster.ledger().hot_balances()
    assert hot[("world", "coin")] == -sum(100 + n for n in range(40)) - 5 * 7


async def test_an_entry_stays_until_the_settle_group_has_it(cluster: Cluster) -> None:
    await grant(cluster.redis, "alice", 50, n=1)
    outbox = CLUSTER.outbox(wallet_key("alice"))
    await cluster.redis.xgroup_create(outbox, SETTLE_GROUP, id="0")
    ledger = cluster.ledger()
    assert await ledger.drain() == 1
    assert await pg_count(cluster.urls, "SELECT count(*) FROM transactions") == 1
    # filed, but the credit step has not run: the audit is not final yet
    report = await ledger.audit()
    assert report.pending == 1 and not report.ok
    await settle(cluster.redis, [outbox])
    assert await cluster.redis.xlen(outbox) == 1  # settled after it was filed
    report = await ledger.audit()
    assert report.ok and report.pending == 0, report.public()


async def test_a_poison_entry_is_parked_in_its_own_slot(cluster: Cluster) -> None:
    owner = wallet_key("mallory")
    await cluster.redis.xadd(CLUSTER.outbox(owner), {"tx": b"{not json"})
    await grant(cluster.redis, "bob", 10, n=2)
    assert await cluster.ledger().drain() == 2
    dead: Any = await cluster.redis.xrange(CLUSTER.dead_letters(owner))
    assert len(dead) == 1 and dead[0][1][b"reason"].startswith(b"undecodable")
    assert await pg_count(cluster.urls, "SELECT count(*) FROM transactions") == 1


async def test_repair_puts_back_balances_a_failover_lost(cluster: Cluster) -> None:
    for n, user in enumerate(["ann", "ben", "cat"]):
        await grant(cluster.redis, user, 300, n=n)
    await settle(cluster.redis, [CLUSTER.outbox(wallet_key(u)) for u in ("ann", "ben", "cat")])
    assert (await cluster.ledger().audit()).ok
    # the primary of ben's slot lost its last writes: his wallet and the slot's
    # system balance went back to before the grant
    await cluster.redis.delete(wallet_key("ben"))
    await cluster.redis.hincrby(
        CLUSTER.balances(wallet_key("ben")), system_field("world", "coin"), 300
    )
    found = await cluster.ledger().audit()
    assert {(m.account, m.hot, m.ledger) for m in found.mismatches} == {
        (coins_account("ben"), 0, 300),
        ("world", -600, -900),
    }
    report = await repair_scaled(redis_url=cluster.urls.redis, database_url=cluster.urls.database)
    assert len(report.balances) == 2
    after = await cluster.ledger().audit()
    assert after.ok, after.public()
    assert int(await cluster.redis.hget(wallet_key("ben"), "coin")) == 300


async def test_overlay_presence_on_a_cluster(cluster: Cluster) -> None:
    presence = RedisOverlayPresence(cluster.redis)
    overlays = [{"id": "ov-1", "kind": "alerts"}]
    await presence.report("room-1", node="n1", overlays=overlays, ttl_ms=60_000)
    await presence.report("room-2", node="n1", overlays=[], ttl_ms=60_000)
    assert await presence.overlays("room-1") == overlays
    assert await presence.overlays("room-2") == []


async def _filed(urls: Urls, count: int) -> bool:
    return await pg_count(urls, "SELECT count(*) FROM transactions") >= count
