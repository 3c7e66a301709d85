"""The scaled engine on a Redis Cluster of three primaries with a replica each,
under gift load: a primary killed (its replica promoted after the short
``cluster-node-timeout``) and a hot room's slot migrated. Every request is resent
with its key until answered, as a client does. Afterwards no acknowledged gift
is lost or doubled (each sender's balance, the ledger's gift transactions), a
viewer saw every event or was told to re-sync, and the audit passes. Without
``LIVE_REDIS_WAIT_REPLICAS`` a failover can lose acknowledged gifts: the audit
finds them and the repair puts them back from the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from loadtest.processes import RedisCluster, RedisClusterNode
from store.domain.models import Event, GiftReceipt, Profile
from store.engine import open_engine
from store.errors import Unavailable
from store.roles import Engine, EngineConfig
from store.scaled.keys import SEQ, room_key, wallet_key
from store.scaled.repair import repair_scaled
from store.scaled.slots import slot_of
from tests.services import Services, adult, eventually, fund, replicated_cluster, rose

pytestmark = pytest.mark.scaled

ROOM = "hot-room"
_ANSWER_WITHIN = 60.0
"""Seconds a request is resent for before the test gives up on it."""


async def _engine(cluster: RedisCluster, database: str, *, wait_replicas: int) -> Engine:
    return await open_engine(
        EngineConfig(
            redis_url=cluster.url,
            database_url=database,
            redis_wait_replicas=wait_replicas,
            redis_wait_seconds=0.5,
        )
    )


class Viewer:
    """A room's subscriber that re-syncs from history when told to (``on_reset``),
    as a node's hub does: a gap it was not told about stays a gap."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: dict[int, Event] = {}
        self.resets = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def on_events(self, room_id: str, events: list[Event]) -> None:
        for event in events:
            self.seen[int(event["seq"])] = event

    def on_reset(self, room_id: str) -> None:
        self.resets += 1
        task = asyncio.get_running_loop().create_task(self._resync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self) -> None:
        deadline = time.monotonic() + _ANSWER_WITHIN
        while True:
            try:
                history = await self.engine.broker.history(ROOM, since=0)
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        for event in history or ():
            self.seen.setdefault(int(event["seq"]), event)

    def gaps(self, last: int) -> list[int]:
        return [seq for seq in range(1, last + 1) if seq not in self.seen]


class GiftLoad:
    """Senders gifting a rose into one room, one request at a time each, every
    request resent with its key until answered; and a publisher of room events."""

    def __init__(self, engine: Engine, senders: list[Profile]) -> None:
        self.engine = engine
        self.senders = senders
        self.acked: dict[str, GiftReceipt] = {}
        self.resent = 0
        self.published = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> GiftLoad:
        """Start every sender and the publisher; stopped on leaving, however left."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._gifts(sender)) for sender in self.senders]
        self._tasks.append(loop.create_task(self._events()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def until(self, acked: int) -> None:
        target = len(self.acked) + acked
        await eventually(lambda: len(self.acked) >= target, timeout=60, what=f"{acked} acks")

    async def _gifts(self, sender: Profile) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"{sender.id}-{n}"
            request = rose(self.engine, sender, key, room_id=ROOM)
            self.acked[key] = await self._answered(lambda: self.engine.wallet.send_gift(request))  # noqa: B023
            n += 1

    async def _events(self) -> None:
        while not self._stop.is_set():
            await self._answered(lambda: self.engine.broker.publish(ROOM, [{"type": "chat"}]))
            self.published += 1
            await asyncio.sleep(0.01)

    async def _answered(self, call: Any) -> Any:
        deadline = time.monotonic() + _ANSWER_WITHIN
        while True:
            try:
                return await call()
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                self.resent += 1
                await asyncio.sleep(0.05)


async def _setup(engine: Engine, senders: int) -> tuple[list[Profile], dict[str, int], Viewer]:
    creator = Profile(id="creator", username="creator", adult=True)
    await engine.rooms.go_live(room_id=ROOM, creator=creator, title="hot")
    people = [adult(f"fan-{n}") for n in range(senders)]
    funded = {p.id: await fund(engine, p) for p in people}
    viewer = Viewer(engine)
    await engine.broker.subscribe(ROOM, viewer)
    return people, funded, viewer


async def _check(
    engine: Engine, database: str, load: GiftLoad, funded: dict[str, int], viewer: Viewer
) -> None:
    """No acknowledged gift lost or doubled; no silent gap; the audit passes."""
    spent: dict[str, int] = {}
    for key, receipt in load.acked.items():
        sender = key.rpartition("-")[0]
        spent[sender] = spent.get(sender, 0) + receipt.coins
    for sender, coins in funded.items():
        balance = await engine.wallet.balance(sender)
        assert balance.coins == coins - spent.get(sender, 0), sender
    txs = {receipt.tx for receipt in load.acked.values()}
    assert len(txs) == len(load.acked)  # one transaction per request, resent or not

    async def settled() -> bool:
        report = await engine.ledger.audit()
        return report.ok

    await eventually(settled, timeout=60, what="the audit to pass once settled")
    conn = await asyncpg.connect(database)
    try:
        filed = {
            r["id"] for r in await conn.fetch("SELECT id FROM transactions WHERE kind = 'gift'")
        }
    finally:
        await conn.close()
    assert filed == txs
    last = await engine.broker.last_seq(ROOM)
    await eventually(lambda: not viewer.gaps(last), timeout=30, what="the viewer to catch up")


async def test_a_primary_killed_under_gift_load_loses_no_acknowledged_gift(
    services: Services, tmp_path: Path
) -> None:
    database = (await services.reset()).database
    async with replicated_cluster(tmp_path / "cluster") as cluster:
        engine = await _engine(cluster, database, wait_replicas=1)
        try:
            people, funded, viewer = await _setup(engine, senders=24)
            victim = await cluster.primary_of(room_key(ROOM, SEQ))
            holders = [await cluster.primary_of(wallet_key(p.id)) for p in people]
            assert victim in holders  # the victim holds senders' wallets too
            promoted = await cluster.replica_of(victim)
            async with GiftLoad(engine, people) as load:
                await load.until(acked=100)
                await victim.kill()
                await eventually(
                    lambda: _serves(cluster, room_key(ROOM, SEQ), promoted),
                    timeout=30,
                    what="the replica to take over",
                )
                # the promoted primary has no replica: WAIT 1 holds money answers
                # back until the old primary is back as its replica
                await victim.start()
                await load.until(acked=200)
            assert load.resent > 0  # the failover was felt
            assert viewer.resets >= 1
            await _check(engine, database, load, funded, viewer)
        finally:
            await engine.close()


async def test_a_hot_rooms_slot_migrated_under_gift_load(
    services: Services, tmp_path: Path
) -> None:
    database = (await services.reset()).database
    async with replicated_cluster(tmp_path / "cluster") as cluster:
        engine = await _engine(cluster, database, wait_replicas=1)
        try:
            people, funded, viewer = await _setup(engine, senders=16)
            slot = slot_of(room_key(ROOM, SEQ))
            source = await cluster.primary_of(room_key(ROOM, SEQ))
            primaries = [n for n in cluster.nodes if n is not source and await _is_primary(n)]
            target = primaries[0]
            async with GiftLoad(engine, people) as load:
                await load.until(acked=100)
                moved = await cluster.migrate_slot(slot, source, target)
                assert moved >= 3  # the room's hash, seq, history at least
                await load.until(acked=100)
            assert await cluster.primary_of(room_key(ROOM, SEQ)) is target
            assert viewer.resets >= 1
            await _check(engine, database, load, funded, viewer)
        finally:
            await engine.close()


async def test_without_wait_a_failover_loses_acks_and_the_repair_restores_them(
    services: Services, tmp_path: Path
) -> None:
    """The replica stalls (SIGSTOP), gifts are acknowledged by the primary alone and
    filed by the ledger, the primary dies and the stale replica takes over: Redis
    forgot them, the ledger did not. The audit names the difference; the repair
    moves the balances back and rebuilds the receipts, so a resend is answered
    from the receipt instead of charging twice."""
    database = (await services.reset()).database
    async with replicated_cluster(tmp_path / "cluster") as cluster:
        engine = await _engine(cluster, database, wait_replicas=0)
        try:
            fan = adult("fan")
            creator = Profile(id="creator", username="creator", adult=True)
            await engine.rooms.go_live(room_id=ROOM, creator=creator, title="hot")
            coins = await fund(engine, fan)
            primary = await cluster.primary_of(wallet_key(fan.id))
            replica = await cluster.replica_of(primary)
            first = await engine.wallet.send_gift(rose(engine, fan, "k1", room_id=ROOM))
            assert await _replicated_offset(primary)
            # the replica stops, and its link is cut: what follows never reaches it
            # (a stopped replica would still read what sits in its socket)
            os.kill(replica.pid, signal.SIGSTOP)
            try:
                await primary.execute("CLIENT", "KILL", "TYPE", "replica")
                lost = [
                    await engine.wallet.send_gift(rose(engine, fan, f"k{n}", room_id=ROOM))
                    for n in range(2, 5)
                ]
                await engine.ledger.audit()  # which files the outbox in PostgreSQL first
                assert await _gifts_filed(database) == 4
                await primary.kill()
            finally:
                os.kill(replica.pid, signal.SIGCONT)
            # the stale replica takes over (promoted by the others, or by itself)
            with contextlib.suppress(Exception):
                await replica.execute("CLUSTER", "FAILOVER", "TAKEOVER")
            await eventually(lambda: _serves(cluster, wallet_key(fan.id), replica), timeout=30)
            await eventually(cluster.state_ok, timeout=30, what="every node to agree")
            await eventually(lambda: _balance_answers(engine, fan.id), timeout=30)
            balance = await engine.wallet.balance(fan.id)
            assert balance.coins == first.balance  # Redis forgot three acked gifts
            report = await engine.ledger.audit()
            assert not report.ok
            assert any(m.account == f"user:{fan.id}:coins" for m in report.mismatches)
            await engine.close()
            repaired = await repair_scaled(redis_url=cluster.url, database_url=database)
            assert {tx for tx in repaired.gift_keys} >= {r.tx for r in lost}
            engine = await _engine(cluster, database, wait_replicas=0)
            assert (await engine.ledger.audit()).ok
            again = await engine.wallet.send_gift(rose(engine, fan, "k4", room_id=ROOM))
            assert again.replayed and again.tx == lost[-1].tx
            assert (await engine.wallet.balance(fan.id)).coins == lost[-1].balance
            assert coins > lost[-1].balance
        finally:
            await engine.close()


async def _gifts_filed(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM transactions WHERE kind = 'gift'"))
    finally:
        await conn.close()


async def _is_primary(node: RedisClusterNode) -> bool:
    role = await node.execute("ROLE")
    return bool(role[0] == b"master")


async def _serves(cluster: RedisCluster, key: str, node: RedisClusterNode) -> bool:
    try:
        return await cluster.primary_of(key) is node and await _is_primary(node)
    except RuntimeError:
        return False


async def _replicated_offset(primary: RedisClusterNode) -> bool:
    return int(await primary.execute("WAIT", 1, 5_000)) == 1


async def _balance_answers(engine: Engine, user_id: str) -> bool:
    try:
        await engine.wallet.balance(user_id)
    except Unavailable:
        return False
    return True
