"""The engine's batcher and broker on a real Redis Cluster: slot routing, scripts
loaded on each primary, a refused cross-slot script, ``MOVED`` and ``ASK`` while
a slot migrates; sharded pub/sub across primaries, a room's slot moving under
its subscribers, a killed pub/sub connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.crc import key_slot

from loadtest.processes import RedisCluster, RedisClusterNode, RedisServer
from store.domain.catalog import Catalog
from store.domain.models import Event
from store.errors import StoreError, Unavailable
from store.roles import EngineConfig
from store.scaled.broker import RedisBroker
from store.scaled.client import CommandBatcher, load_script
from store.scaled.cluster import ClusterAddress
from store.scaled.engine import open_scaled_engine
from store.scaled.keys import HISTORY, SEQ, channel_name, room_key, wallet_key
from tests.services import Recorder, Services, eventually, replicated_cluster

pytestmark = pytest.mark.scaled

_PUBLISH = load_script("publish")


async def _cluster(services: Services) -> RedisCluster:
    cluster = await services.cluster()
    await cluster.flush()
    return cluster


def _owner(cluster: RedisCluster, key: str, slots: list[list[object]]) -> RedisClusterNode:
    slot = key_slot(key.encode())
    for start, end, primary, *_ in slots:
        if int(start) <= slot <= int(end):  # type: ignore[call-overload]
            port = int(primary[1])  # type: ignore[index]
            return next(node for node in cluster.nodes if node.port == port)
    raise AssertionError(f"no node serves slot {slot}")


async def _slots(cluster: RedisCluster) -> list[list[object]]:
    client = cluster.nodes[0].client()
    try:
        slots: list[list[object]] = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        return slots
    finally:
        await client.aclose()


def _rooms_on_every_node(cluster: RedisCluster, slots: list[list[object]]) -> list[str]:
    """One room id per primary (its keys hash to a slot that node serves)."""
    found: dict[int, str] = {}
    index = 0
    while len(found) < len(cluster.nodes):
        room = f"room-{index}"
        found.setdefault(_owner(cluster, room_key(room, SEQ), slots).port, room)
        index += 1
    return list(found.values())


def test_cluster_url_parses_seeds_and_credentials() -> None:
    address = ClusterAddress.parse("redis+cluster://u:p%40ss@10.0.0.1:7000,[::1]:7001")
    assert address.seeds == (("10.0.0.1", 7000), ("::1", 7001))
    assert (address.username, address.password, address.tls) == ("u", "p@ss", False)
    assert address.node_url(("h", 1)) == "redis://u:p@ss@h:1/0"
    for bad in ("redis+cluster://host", "redis+cluster://h:1/2", "redis://h:1"):
        with pytest.raises(ValueError):
            ClusterAddress.parse(bad)


async def _give_back(
    cluster: RedisCluster, slot: int, holder: RedisClusterNode, owner: RedisClusterNode
) -> None:
    """Return a moved ``slot`` to its first ``owner`` the way it left: a migration,
    whose end raises the owner's config epoch. (Forcing ``SETSLOT … NODE`` on every
    node leaves the holder's higher epoch to win the gossip back on some nodes, and
    the two primaries then send each other's calls back and forth for good.)"""
    await cluster.migrate_slot(slot, holder, owner)
    await cluster.settle()


@pytest.mark.asyncio(loop_scope="session")
async def test_the_engine_opens_on_a_cluster_with_its_ledger_worker(
    services: Services,
) -> None:
    urls = await services.reset_cluster()
    config = EngineConfig(redis_url=urls.redis, database_url=urls.database)
    engine = await open_scaled_engine(config, catalog=Catalog(), run_worker=True)
    try:
        assert await engine.ready() == {"redis": "ok", "postgresql": "ok"}
        assert await engine.metric_values() == {"outbox_lag": 0.0}
    finally:
        await engine.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_calls_go_to_the_primary_of_their_slot(services: Services) -> None:
    cluster = await _cluster(services)
    slots = await _slots(cluster)
    rooms = _rooms_on_every_node(cluster, slots)
    batcher = CommandBatcher(cluster.url)
    try:
        # one loop iteration: one pipeline per primary, each loading the script
        replies = await asyncio.gather(
            *(
                batcher.evalsha(
                    _PUBLISH,
                    (room_key(room, SEQ), room_key(room, HISTORY)),
                    (channel_name(room), 1, "[]", 100, 60),
                )
                for room in rooms
            )
        )
        assert [reply[0] for reply in replies] == [1] * len(rooms)
        assert await batcher.execute("GET", room_key(rooms[0], SEQ)) == b"1"
    finally:
        await batcher.close()
    for room in rooms:
        client = _owner(cluster, room_key(room, SEQ), slots).client()
        try:
            assert await client.get(room_key(room, SEQ)) == b"1"
        finally:
            await client.aclose()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_script_with_keys_of_two_slots_is_refused_before_sending(
    services: Services,
) -> None:
    cluster = await _cluster(services)
    batcher = CommandBatcher(cluster.url)
    try:
        with pytest.raises(StoreError, match="different slots"):
            await batcher.evalsha(
                _PUBLISH, (room_key("a", SEQ), wallet_key("b")), ("c", 1, "[]", 1, 1)
            )
        assert await batcher.execute("GET", room_key("a", SEQ)) is None
    finally:
        await batcher.close()


async def _node_id(node: RedisServer) -> str:
    reply = await node.execute("CLUSTER", "MYID")
    assert isinstance(reply, bytes)
    return reply.decode()


@pytest.mark.asyncio(loop_scope="session")
async def test_moved_and_ask_follow_a_migrating_slot(services: Services) -> None:
    cluster = await _cluster(services)
    slots = await _slots(cluster)
    key = room_key("migrating", SEQ)
    slot = key_slot(key.encode())
    source = _owner(cluster, key, slots)
    target = next(node for node in cluster.nodes if node is not source)
    source_id, target_id = await _node_id(source), await _node_id(target)
    batcher = CommandBatcher(cluster.url)
    try:
        assert await batcher.execute("INCR", key) == 1  # the map is read: slot -> source
        # mid-migration: the key already moved, so the source answers ASK
        await target.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        await source.execute("MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
        assert await batcher.execute("INCR", key) == 2
        # the migration ends: the source answers MOVED from now on
        for node in cluster.nodes:
            await node.execute("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        assert await batcher.execute("INCR", key) == 3
        assert await batcher.evalsha(
            _PUBLISH,
            (key, room_key("migrating", HISTORY)),
            (channel_name("migrating"), 1, "[]", 10, 60),
        ) == [4, pytest.approx(0, abs=10**14)]
    finally:
        await batcher.close()
    assert await target.execute("GET", key) == b"4"
    await _give_back(cluster, slot, target, source)


@pytest.mark.asyncio(loop_scope="session")
async def test_sharded_pubsub_across_primaries_and_processes(services: Services) -> None:
    cluster = await _cluster(services)
    rooms = _rooms_on_every_node(cluster, await _slots(cluster))
    batchers = [CommandBatcher(cluster.url) for _ in range(2)]
    a, b = (RedisBroker(batcher, url=cluster.url, history_size=50) for batcher in batchers)
    try:
        listeners = {room: (Recorder(), Recorder()) for room in rooms}
        for room, (on_a, on_b) in listeners.items():
            await a.subscribe(room, on_a)
            await b.subscribe(room, on_b)
        assert a.connected and len(a._links) == len(cluster.nodes)
        for n in range(10):
            for room in rooms:
                await (b if n % 2 else a).publish(room, [{"type": "chat", "n": n}])
        for on_a, on_b in listeners.values():
            await eventually(lambda: len(on_a.events) == len(on_b.events) == 10)  # noqa: B023
            assert on_a.seqs == list(range(1, 11)) and on_a.events == on_b.events
        for node in cluster.nodes:  # shard channels: no node carries another's rooms
            numsub = await node.execute("PUBSUB", "SHARDNUMSUB", *(channel_name(r) for r in rooms))
            counts = dict(zip(numsub[::2], numsub[1::2], strict=True))  # type: ignore[index]
            assert sorted(counts.values()) == [0] * (len(rooms) - 1) + [2]
    finally:
        for closing in (a, b, *batchers):
            await closing.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_rooms_slot_moving_resubscribes_and_resyncs_without_gap(
    services: Services,
) -> None:
    cluster = await _cluster(services)
    slots = await _slots(cluster)
    room = "hot-room"
    slot = key_slot(room_key(room, SEQ).encode())
    source = _owner(cluster, room_key(room, SEQ), slots)
    target = next(node for node in cluster.nodes if node is not source)
    batchers = [CommandBatcher(cluster.url) for _ in range(2)]
    viewer_side, publisher = (
        RedisBroker(batcher, url=cluster.url, history_size=50) for batcher in batchers
    )
    listener = Recorder()
    try:
        await viewer_side.subscribe(room, listener)
        await publisher.publish(room, [{"type": "chat", "n": 1}])
        await eventually(lambda: listener.seqs == [1])
        await cluster.migrate_slot(slot, source, target)
        # Redis ends the subscription on the old primary; the broker subscribes on
        # the new one and its listener re-syncs from history
        await eventually(lambda: listener.resets == [room], what="on_reset after the move")
        await publisher.publish(room, [{"type": "chat", "n": 2}])
        await eventually(lambda: listener.seqs == [1, 2], what="events after the move")
        assert await viewer_side.history(room, since=0) is not None
        # a killed pub/sub connection: the same re-sync
        killed = await target.execute("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1  # type: ignore[operator]
        await eventually(lambda: listener.resets == [room, room], what="on_reset after the kill")
        await publisher.publish(room, [{"type": "chat", "n": 3}])
        await eventually(lambda: listener.seqs == [1, 2, 3], what="events after the kill")
    finally:
        for closing in (viewer_side, publisher, *batchers):
            await closing.close()
        await _give_back(cluster, slot, target, source)


async def _published(broker: RedisBroker, room: str, event: Event) -> bool:
    try:
        await broker.publish(room, [event])
    except Unavailable:
        return False  # the failover is still going on
    return True


@pytest.mark.asyncio(loop_scope="session")
async def test_a_primary_failing_over_resubscribes_and_resyncs(tmp_path: Path) -> None:
    async with replicated_cluster(tmp_path / "cluster") as cluster:
        room = "failing-room"
        slots = await _slots(cluster)
        primary = _owner(cluster, room_key(room, SEQ), slots)
        batchers = [CommandBatcher(cluster.url, timeout=2.0) for _ in range(2)]
        viewer_side, publisher = (RedisBroker(b, url=cluster.url) for b in batchers)
        listener = Recorder()
        try:
            await viewer_side.subscribe(room, listener)
            await publisher.publish(room, [{"type": "chat", "n": 1}])
            await eventually(lambda: listener.seqs == [1])
            assert await primary.execute("WAIT", 1, 5_000) == 1  # replicated
            await primary.kill()
            # the replica takes over the slot, with the first event
            await eventually(
                lambda: _published(publisher, room, {"type": "chat", "n": 2}),
                timeout=30,
                what="a publish after the failover",
            )
            await eventually(lambda: listener.resets == [room], what="on_reset after failover")
            history = await viewer_side.history(room, since=0)
            assert history is not None and [e["n"] for e in history] == [1, 2]
            await publisher.publish(room, [{"type": "chat", "n": 3}])
            await eventually(lambda: listener.seqs[-1:] == [3], what="events after failover")
            dead = ("127.0.0.1", primary.port)
            await eventually(
                lambda: dead not in viewer_side._links, what="the link to the dead primary to go"
            )
        finally:
            for closing in (viewer_side, publisher, *batchers):
                await closing.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_calls_during_a_migration_run_exactly_once(services: Services) -> None:
    """Scripts and commands sent while a slot's keys migrate: every ``ASK`` and
    ``MOVED`` is followed, none runs twice or is lost."""
    cluster = await _cluster(services)
    slots = await _slots(cluster)
    rooms = [f"busy-{n}" for n in range(12)]
    moving = rooms[0]
    slot = key_slot(room_key(moving, SEQ).encode())
    source = _owner(cluster, room_key(moving, SEQ), slots)
    target = next(node for node in cluster.nodes if node is not source)
    batcher = CommandBatcher(cluster.url)
    rounds = 40

    async def publish_all(times: int) -> None:
        for _ in range(times):
            await asyncio.gather(
                *(
                    batcher.evalsha(
                        _PUBLISH,
                        (room_key(room, SEQ), room_key(room, HISTORY)),
                        (channel_name(room), 1, "[]", 1_000, 600),
                    )
                    for room in rooms
                )
            )

    try:
        await asyncio.gather(publish_all(rounds), cluster.migrate_slot(slot, source, target))
        await publish_all(rounds)  # the slot map from before the move: MOVED at least once
        rounds *= 2
        assert batcher.redirections >= 1
        counts = await asyncio.gather(*(batcher.execute("GET", room_key(r, SEQ)) for r in rooms))
        assert counts == [str(rounds).encode()] * len(rooms)
        lengths = await asyncio.gather(
            *(batcher.execute("XLEN", room_key(r, HISTORY)) for r in rooms)
        )
        assert lengths == [rounds] * len(rooms)
    finally:
        await batcher.close()
        await _give_back(cluster, slot, target, source)
