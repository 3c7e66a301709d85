"""The Redis broker across nodes: two broker instances on one Redis act as two
server processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store.domain.models import Event
from store.scaled.broker import RedisBroker
from store.scaled.client import CommandBatcher
from store.scaled.keys import channel_name
from tests.services import Recorder, Urls, eventually, redis_client

pytestmark = pytest.mark.scaled


@pytest.fixture
async def nodes(urls: Urls) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    batchers = [CommandBatcher(urls.redis) for _ in range(2)]
    a, b = (
        RedisBroker(batcher, url=urls.redis, history_size=50, history_seconds=60)
        for batcher in batchers
    )
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        for batcher in batchers:
            await batcher.close()


async def _subscribers(urls: Urls, room_id: str) -> int:
    client = await redis_client(urls)
    try:
        counts = await client.pubsub_numsub(channel_name(room_id))
        return int(counts[0][1])
    finally:
        await client.aclose()


async def _numsub_is(urls: Urls, room_id: str, expected: int) -> bool:
    return await _subscribers(urls, room_id) == expected


async def test_events_published_on_one_node_reach_the_other_in_order(
    nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, b = nodes
    on_a, on_b = Recorder(), Recorder()
    await a.subscribe("room", on_a)
    await b.subscribe("room", on_b)
    for n in range(20):
        publisher = b if n % 2 else a
        await publisher.publish("room", [{"type": "chat", "n": n}, {"type": "like", "n": n}])
    await eventually(lambda: len(on_a.events) == 40 and len(on_b.events) == 40)
    assert on_a.seqs == list(range(1, 41))
    assert on_a.events == on_b.events
    assert [event["n"] for event in on_a.events] == [n for n in range(20) for _ in (0, 1)]
    assert await a.last_seq("room") == await b.last_seq("room") == 40
    assert not on_a.resets and not on_b.resets


async def test_publish_stamps_in_place_and_local_listeners_have_it_on_return(
    nodes: tuple[RedisBroker, RedisBroker],
) -> None:
    a, _ = nodes
    listener = Recorder()
    await a.subscribe("room", listener)
    events: list[Event] = [{"type": "chat", "text": "hi"}]
    stamped = await a.publish("room", events)
    assert stamped is events and events[0]["seq"] == 1 and isinstance(events[0]["ts"], int)
    assert listener.events == events


async def test_one_channel_subscription_per_room_per_node(
    urls: Urls, nodes: tuple[RedisBroker, RedisBroker]
) -> None:
    a, b = nodes
    first, second = Recorder(), Recorder()
    subs = [
        await a.subscribe("room", first),
        await a.subscribe("room", second),
        await a.subscribe("room", first),
    ]
    await b.subscribe("room", Recorder())
    assert await _subscribers(urls, "room") == 2  # one per node
    assert a.listeners("room") == 2
    await b.publish("room", [{"type": "like"}])
    await eventually(lambda: len(first.events) == 1 and len(second.events) == 1)
    await subs[0].close()
    await subs[1].close()
    await b.publish("room", [{"type": "like"}])
    await eventually(lambda: len(first.events) == 2, what="the still-open subscription")
    await subs[2].close()
    await subs[2].close()  # closing twice is a no-op
    assert a.listeners("room") == 0
    await eventually(lambda: _numsub_is(urls, "room", 1), what="node A to unsubscribe")


async def test_killed_pubsub_connection_resets_listeners_and_delivery_resumes(
    urls: Urls, nodes: tuple[RedisBroker, RedisBroker]
) -> None:
    a, b = nodes
    listener = Recorder()
    await a.subscribe("room", listener)
    await b.publish("room", [{"type": "chat", "n": 1}])
    await eventually(lambda: len(listener.events) == 1)
    client = await redis_client(urls)
    try:
        killed = await client.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "KILL", "TYPE", "pubsub"
        )
        assert killed >= 1
    finally:
        await client.aclose()
    await eventually(lambda: listener.resets == ["room"], what="on_reset after the reconnect")
    await b.publish("room", [{"type": "chat", "n": 2}])
    await eventually(lambda: len(listener.events) == 2, what="events after the reconnect")
    assert listener.seqs == [1, 2]
    assert a.reconnects >= 1


async def test_history_window_by_count(nodes: tuple[RedisBroker, RedisBroker]) -> None:
    a, b = nodes
    for n in range(60):
        await a.publish("room", [{"type": "like", "n": n}])
    assert await b.history("room", since=60) == []
    assert await b.history("room", since=70) == []
    recent = await b.history("room", since=55)
    assert recent is not None and [e["seq"] for e in recent] == [56, 57, 58, 59, 60]
    window = await b.history("room", since=10)  # the 50 newest: seq 11..60
    assert window is not None and [e["seq"] for e in window] == list(range(11, 61))
    assert await b.history("room", since=9) is None
    assert await b.history("room", since=0) is None
    assert await b.history("other", since=0) == []


async def test_history_window_by_age(urls: Urls) -> None:
    batcher = CommandBatcher(urls.redis)
    broker = RedisBroker(batcher, url=urls.redis, history_size=100, history_seconds=0.2)
    try:
        await broker.publish("room", [{"type": "like"}, {"type": "like"}])
        assert [e["seq"] for e in await broker.history("room", since=0) or []] == [1, 2]
        await eventually(lambda: _expired(broker), timeout=5, what="the events to age out")
        await broker.publish("room", [{"type": "like"}])
        assert await broker.history("room", since=0) is None
        assert [e["seq"] for e in await broker.history("room", since=2) or []] == [3]
    finally:
        await broker.close()
        await batcher.close()


async def _expired(broker: RedisBroker) -> bool:
    return await broker.history("room", since=0) is None
